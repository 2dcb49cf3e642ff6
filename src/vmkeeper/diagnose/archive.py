"""Where the bundle goes and how it is written: a gzipped tar, mode 0600, written atomically
(vmkeeper.atomic), its folders 0700 and its files 0600 inside, so unpacking it as another user
keeps the evidence private.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from vmkeeper.atomic import PRIVATE, atomic_file
from vmkeeper.errors import VmkeeperError


class BundleError(VmkeeperError):
    """The bundle cannot be written where asked."""


def stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def resolve_output(output: Path | None, now: datetime) -> Path:
    """The archive path: ``output``, a default name inside it if it is a folder, or in cwd."""
    name = f"vmkeeper-bundle-{stamp(now)}.tar.gz"
    path = Path.cwd() / name if output is None else output / name if output.is_dir() else output
    if not path.parent.is_dir():
        raise BundleError(f"the folder {path.parent} does not exist: create it or give -o a "
                          "path in an existing folder.", exit_code=2)
    return path


def write_archive(path: Path, root: str, members: Sequence[tuple[str, bytes]],
                  now: datetime) -> int:
    """Write ``members`` under ``root/`` into a gzipped tar at ``path``, atomically, mode 0600.

    Returns the archive's size. Raises BundleError if the folder cannot be written.
    """
    mtime = int(now.timestamp())
    folders = sorted({str(parent) for name, _ in members
                      for parent in PurePosixPath(root, name).parents if str(parent) != "."})
    try:
        with atomic_file(path, mode=PRIVATE) as raw, \
                tarfile.open(fileobj=raw, mode="w:gz") as archive:
            for folder in folders:
                info = tarfile.TarInfo(folder)
                info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, mtime
                archive.addfile(info)
            for name, data in members:
                info = tarfile.TarInfo(f"{root}/{name}")
                info.size, info.mode, info.mtime = len(data), 0o600, mtime
                archive.addfile(info, io.BytesIO(data))
    except OSError as error:
        raise BundleError(f"cannot write {path} ({error.strerror or error}): give -o a "
                          "writable path.") from None
    return path.stat().st_size
