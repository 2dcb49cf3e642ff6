"""Reading the TOML settings file: only a regular file, of a sane size, in UTF-8, and — for
root — one that no other user can change."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path
from typing import Any

from vmkeeper.errors import SettingsError

# A settings file is a page of TOML; reading more (`--config /dev/zero`) is a mistake.
CONFIG_MAX_BYTES = 1024 * 1024


def read_toml(path: Path) -> dict[str, Any]:
    """The file's TOML, read only if it is a regular file under CONFIG_MAX_BYTES and, for root,
    writable by nobody but its owner and root. Raises SettingsError saying which rule failed."""
    try:
        # O_NONBLOCK: opening a FIFO named as the config must not hang; fstat then refuses it.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise SettingsError(
            f"The config file {path} does not exist: pass an existing file to --config "
            "or VMKEEPER_CONFIG."
        ) from None
    except OSError as error:
        raise SettingsError(f"The config file {path} cannot be read: {error.strerror}.") from None
    with os.fdopen(descriptor, "rb") as handle:
        _check_config_file(path, os.fstat(descriptor), as_root=os.geteuid() == 0)
        try:
            data = handle.read(CONFIG_MAX_BYTES + 1)
        except OSError as error:
            raise SettingsError(
                f"The config file {path} cannot be read: {error.strerror}.") from None
    if len(data) > CONFIG_MAX_BYTES:
        raise SettingsError(f"The config file {path} is larger than "
                            f"{CONFIG_MAX_BYTES // 1024} KiB: point --config at the settings "
                            "file itself.")
    try:
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise SettingsError(
            f"The config file {path} is not UTF-8 text (byte {error.start}): save it as UTF-8."
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise SettingsError(
            f"The config file {path} is not valid TOML ({error}): fix the syntax there."
        ) from None


def _check_config_file(path: Path, info: os.stat_result, *, as_root: bool) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise SettingsError(f"The config file {path} is not a regular file: point --config at "
                            "a TOML file.")
    # The file names programs vmkeeper runs (pm2.bin, ffmpeg_path…): as root, a file another
    # user can change is a way to run their program as root.
    # Group write counts unless the group is root's own.
    others_write = info.st_mode & (stat.S_IWOTH | (stat.S_IWGRP if info.st_gid != 0 else 0))
    if as_root and others_write:
        raise SettingsError(
            f"The config file {path} can be changed by users other than its owner and root "
            f"(mode {stat.filemode(info.st_mode)}) and vmkeeper runs as root: "
            f"`chmod go-w {path}`."
        )
