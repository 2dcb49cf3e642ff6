from __future__ import annotations

import os
from pathlib import Path

from tests.support.waiting import wait_for
from vmkeeper.fileid import file_identity


def _ticked(ctime_ns: int, probe: Path) -> bool:
    probe.touch()
    return os.stat(probe).st_ctime_ns != ctime_ns


def test_a_file_is_the_same_until_its_content_or_place_changes(tmp_path: Path) -> None:
    path = tmp_path / "a.mp4"
    path.write_bytes(b"one")
    first = file_identity(path)
    assert first is not None and file_identity(str(path)) == first
    times = os.stat(path)
    # Inode times come from a coarse clock (one tick is 1-10 ms): its next tick, so that the
    # rewrite gets a ctime of its own.
    wait_for(lambda: _ticked(times.st_ctime_ns, tmp_path / ".tick"), 5, "the file clock to tick",
             interval=0.001)
    path.write_bytes(b"two")  # same size, rewritten in place
    os.utime(path, ns=(times.st_atime_ns, times.st_mtime_ns))  # and its mtime put back
    second = file_identity(path)
    assert second is not None and second != first  # ctime still moved
    other = tmp_path / "b.mp4"
    other.write_bytes(b"two")
    rewritten = os.stat(path)
    os.utime(other, ns=(rewritten.st_atime_ns, rewritten.st_mtime_ns))
    other.replace(path)  # another file under the same name, same size and times
    assert file_identity(path) not in (None, second)


def test_what_is_not_a_regular_file_has_no_identity(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "missing")
    for path in (fifo, tmp_path, tmp_path / "missing", link):
        assert file_identity(path) is None
