"""The one test of "the same file, unchanged": a work done ahead on a file is used only if this
answer is still the same when the work is wanted.

Standard library only: the media worker imports it before PyAV (media/worker.py), and the media
service's look-ahead for its queue (media/runner.py) uses the same answer.
"""

from __future__ import annotations

import os
import stat

Identity = tuple[int, int, int, int, int]


def file_identity(path: str | os.PathLike[str]) -> Identity | None:
    """Device, inode, size, mtime and ctime (ns) of the regular file at ``path``; None for what
    is missing or not a regular file. A rewrite in place changes mtime, a ``touch -d`` back to the
    old time still changes ctime, a file put in its place another inode."""
    try:
        found = os.stat(path)
    except OSError:
        return None
    if not stat.S_ISREG(found.st_mode):
        return None
    return (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns, found.st_ctime_ns)
