"""The one atomic file write: a temporary file in the same folder, fsync, rename, fsync the folder.

A reader (node_exporter's textfile collector, the next deploy reading a release's record, the
person unpacking a bundle) sees the old file or the whole new one, never half; after a power
cut the rename is on disk too, because the folder is synced. The temporary file is created
0600 (mkstemp), so nothing is ever world-readable on the way, whatever the umask; the final
mode is set before the rename. On any failure the temporary file is removed and the old
content stays where it was.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

# State and evidence files are the owner's; pass 0o644 for what another user must read.
PRIVATE = 0o600


@contextlib.contextmanager
def atomic_file(path: Path, *, mode: int = PRIVATE) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` when the block ends without an exception.

    Raises OSError as the filesystem does (a missing or read-only folder).
    """
    descriptor, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            os.fchmod(handle.fileno(), mode)
        os.replace(temp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    fsync_folder(path.parent)


def write_atomic(path: Path, data: bytes | str, *, mode: int = PRIVATE) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8), atomically."""
    with atomic_file(path, mode=mode) as handle:
        handle.write(data.encode("utf-8") if isinstance(data, str) else data)


def fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable; a filesystem that cannot sync a folder is let be."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the rename itself is still atomic
    finally:
        os.close(descriptor)
