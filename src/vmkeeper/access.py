"""Can another user read a path? From the mode bits of each component, as the kernel decides.

`os.access` answers only for the calling user; doctor asks for Apache's (www-data), which on
Ubuntu cannot enter a 0750 home folder — where the runbook's releases live. POSIX ACLs are not
read (getfacl is not in the standard library): a path an ACL opens is reported as blocked, with
the mode bits that block it, so the operator can see why.
"""

from __future__ import annotations

import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Identity:
    name: str
    uid: int
    gids: frozenset[int]

    @classmethod
    def of(cls, user: str) -> Identity:
        """KeyError when the user does not exist here."""
        entry = pwd.getpwnam(user)
        return cls(user, entry.pw_uid, frozenset(os.getgrouplist(user, entry.pw_gid)))

    @classmethod
    def current(cls) -> Identity:
        name = pwd.getpwuid(os.getuid()).pw_name
        return cls(name, os.getuid(), frozenset(os.getgroups()) | {os.getgid()})


def _allowed(info: os.stat_result, who: Identity, bits: tuple[int, int, int]) -> bool:
    if who.uid == 0:
        return True
    owner, group, other = bits
    if info.st_uid == who.uid:
        return bool(info.st_mode & owner)
    if info.st_gid in who.gids:
        return bool(info.st_mode & group)
    return bool(info.st_mode & other)


_EXEC = (stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH)
_READ = (stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)


def blocked(path: Path, who: Identity) -> str | None:
    """Why ``who`` cannot read ``path`` (a file, or a folder to list and enter), or None when
    it can: every folder above it must let ``who`` enter (x)."""
    path = Path(os.path.abspath(path))
    for folder in reversed(path.parents):
        try:
            info = folder.stat()
        except OSError as error:
            return f"{folder}: {error.strerror}"
        if not _allowed(info, who, _EXEC):
            return (f"{who.name} cannot enter {folder} (mode {stat.filemode(info.st_mode)}, "
                    f"owner uid {info.st_uid})")
    try:
        info = path.stat()
    except OSError as error:
        return f"{path}: {error.strerror}"
    if not _allowed(info, who, _READ) or (stat.S_ISDIR(info.st_mode)
                                          and not _allowed(info, who, _EXEC)):
        return (f"{who.name} cannot read {path} (mode {stat.filemode(info.st_mode)}, "
                f"owner uid {info.st_uid})")
    return None
