"""The frame spool: a piece's converted frames in an unnamed file, read back newest first.

Imported by the reversal worker only (``media/reverse.py``): PyAV and the standard library.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import av

from vmkeeper.media.frames import ReversalFailed

_TMPFS = {"tmpfs", "ramfs"}
_ADVISE_STEP = 8 * 1024 * 1024  # push spooled pages out in 8 MiB steps, not per frame
_READ_AHEAD_FRAMES = 4  # frames fetched ahead from disk when a piece was over its cache share


def filesystem_type(path: str) -> str:
    """The type of the filesystem holding ``path`` (longest mount point in mountinfo)."""
    target = os.path.realpath(path)
    best, kind = "", ""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                if " - " not in line or len(fields) < 5:
                    continue
                point = fields[4].replace("\\040", " ")
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, line.split(" - ", 1)[1].split()[0]
    except OSError:
        return ""
    return kind


def spool_directory(temp_dir: str, output: str) -> str:
    """Where a piece's frames are spooled: the private temp dir, unless that is RAM.

    A spool on tmpfs is shared memory: counted like the frames it replaces and not
    reclaimable without swap. The output's directory is on the disk DST goes to.
    """
    if filesystem_type(temp_dir) in _TMPFS:
        return os.path.dirname(os.path.abspath(output)) or "."
    return temp_dir


class CacheShare:
    """The page cache the spools of one reversal may hold together (``media.memory_budget_mb``).

    A spool being written may hold what the others do not hold at that moment: alone (the
    first piece, the only piece of a short clip) it has the whole budget; beside one being read
    back, the rest, which grows as that one is read (each frame read is truncated away). It
    used to be half each, always: a 1 s 1080p clip (89 MiB of frames) then wrote 41 MiB of
    them to the disk and read them back while 48 MiB of the budget stayed unused (0.26 s of
    its 1.9 s here).
    """

    def __init__(self, total_bytes: int) -> None:
        self.total_bytes = max(total_bytes, 0)
        self.spools: list[Spool] = []

    def left_for(self, spool: Spool) -> int:
        return max(0, self.total_bytes - sum(other.cached_bytes() for other in self.spools
                                             if other is not spool))


class Spool:
    """One piece's converted yuv420p frames in an unnamed file: written forward, read back
    newest first, the file truncated behind each frame read.

    Why a file and not a list: a GOP of 1080p is ~190 MiB of decoded frames, and anonymous
    memory cannot be reclaimed on a VM without swap; page cache can. The worker's own memory
    then holds about one frame. ``share`` caps the page cache the spools hold: pages beyond this
    spool's part are handed to writeback and dropped (POSIX_FADV_DONTNEED) as the piece is
    written, and truncating from the end as frames are read back drops pages without writing
    them out at all — a piece that fits never touches the disk.
    """

    def __init__(self, directory: str, width: int, height: int, share: CacheShare) -> None:
        self.width, self.height = width, height
        self.share = share
        share.spools.append(self)
        # (plane width in bytes, rows) of yuv420p, stored tightly: no line padding on disk.
        self.planes = [(width, height), (width // 2, height // 2), (width // 2, height // 2)]
        self.frame_bytes = sum(w * h for w, h in self.planes)
        try:
            # O_TMPFILE: no name ever exists, and the kernel frees it if the worker is killed.
            self.fd = os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except (OSError, AttributeError):
            # Imported only here: tempfile brings shutil, bz2, lzma and random (~1.5 MiB in
            # the worker, whose memory is the reversal's).
            import tempfile

            handle, name = tempfile.mkstemp(prefix=".vmkeeper-spool-", dir=directory)
            os.unlink(name)
            self.fd = handle
        self.count = 0
        self.advised = 0  # where the piece ended when its older pages were last pushed out
        self.evicted = 0  # the piece's pages below this offset were pushed out of the cache

    def close(self) -> None:
        os.close(self.fd)

    def cached_bytes(self) -> int:
        """What this spool holds in the page cache now (its frames not pushed out)."""
        return max(0, self.count * self.frame_bytes - self.evicted)

    def write(self, frame: Any) -> None:
        offset = self.count * self.frame_bytes
        if not self.count:
            self.advised = self.evicted = 0  # a new piece: nothing of it pushed out yet
        if _vectored(os.pwritev, self.fd, self._views(frame), offset) != self.frame_bytes:
            raise ReversalFailed("the frame spool could not be written (disk full?)")
        self.count += 1
        end = offset + self.frame_bytes
        if end - self.advised >= _ADVISE_STEP:
            keep = self.share.left_for(self)
            if end - self.evicted > keep:
                # Dirty pages start writeback here and are dropped by a later call once clean.
                os.posix_fadvise(self.fd, 0, end - keep, os.POSIX_FADV_DONTNEED)
                self.advised, self.evicted = end, end - keep

    def new_frame(self) -> Any:
        return av.VideoFrame(self.width, self.height, "yuv420p")

    def pop(self, frame: Any) -> Any:
        """The newest frame still in the spool, read into ``frame`` (from :meth:`new_frame`).

        One frame serves the whole reversal: a new 1080p frame per read cost an allocation and
        ~760 page faults each, and churned the heap. The encoder has let go of it once
        ``encode`` returns (libx264 copies its input); ``make_writable`` copies first if some
        encoder did not.
        """
        self.count -= 1
        offset = self.count * self.frame_bytes
        frame.make_writable()
        if _vectored(os.preadv, self.fd, self._views(frame), offset) != self.frame_bytes:
            raise ReversalFailed("the frame spool was cut short")
        os.ftruncate(self.fd, offset)  # drops this frame's pages, never written back
        if offset < self.evicted:
            # This part was pushed out of the cache: the kernel's readahead does not follow a
            # file read backwards, so ask for the next frames (older, lower offsets) now and
            # let the disk work while this one is encoded.
            ahead = _READ_AHEAD_FRAMES * self.frame_bytes
            os.posix_fadvise(self.fd, max(0, offset - ahead), min(ahead, offset),
                             os.POSIX_FADV_WILLNEED)
        return frame

    def _views(self, frame: Any) -> list[memoryview]:
        """The frame's pixels as buffers, in the spool's tight layout: a plane whose lines
        are padded (cropped, rotated or odd widths) as one buffer per row."""
        views: list[memoryview] = []
        for plane, (width, rows) in zip(frame.planes, self.planes, strict=False):
            view = memoryview(plane)
            stride = plane.line_size
            if stride == width:
                views.append(view[: width * rows])
            else:
                views.extend(view[row * stride: row * stride + width] for row in range(rows))
        return views


_IOV_MAX = 1024  # Linux's limit on buffers per preadv/pwritev call


def _vectored(call: Callable[[int, Sequence[memoryview], int], int], fd: int,
              views: list[memoryview], offset: int) -> int:
    """``os.preadv``/``os.pwritev`` over any number of buffers; bytes moved in total."""
    done = 0
    for start in range(0, len(views), _IOV_MAX):
        chunk = views[start: start + _IOV_MAX]
        size = sum(len(view) for view in chunk)
        moved = call(fd, chunk, offset + done)
        done += moved
        if moved != size:
            break
    return done


def check_spool_space(directory: str, piece_bytes: int) -> None:
    """Refuse before decoding anything if the biggest piece's spool cannot fit."""
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    margin = 16 * 1024 * 1024
    if piece_bytes + margin > free:
        raise ReversalFailed(
            f"the frame spool needs {piece_bytes / 2**20:,.0f} MiB in {directory} for the "
            f"longest GOP but only {free / 2**20:,.0f} MiB is free; free some disk space "
            "(or point TMPDIR at a bigger disk)"
        )

