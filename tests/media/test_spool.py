"""The frame spools' shared page-cache budget (fast: PyAV frames, no FFmpeg run)."""

from __future__ import annotations

from pathlib import Path

import av

from vmkeeper.media.spool import CacheShare, Spool

MiB = 2**20


def _frame() -> av.VideoFrame:
    frame = av.VideoFrame(640, 360, "yuv420p")
    for plane in frame.planes:
        plane.update(bytes(plane.buffer_size))
    return frame


def test_a_spool_alone_may_hold_the_whole_budget_and_the_other_what_is_left(
        tmp_path: Path) -> None:
    share = CacheShare(64 * MiB)
    first, second = (Spool(str(tmp_path), 640, 360, share) for _ in range(2))
    try:
        frame = _frame()
        for _ in range(100):  # 33 MiB: over half the budget, within all of it
            first.write(frame)
        assert first.evicted == 0 and first.cached_bytes() == 100 * first.frame_bytes
        assert share.left_for(second) == 64 * MiB - 100 * first.frame_bytes
        out = first.new_frame()
        for _ in range(40):  # what is read back leaves the cache: the other may take it
            first.pop(out)
        assert share.left_for(second) == 64 * MiB - 60 * first.frame_bytes
        for _ in range(150):  # 49 MiB beside 20 MiB held: the oldest part goes to the disk
            second.write(frame)
        assert second.evicted > 0
        assert first.cached_bytes() + second.cached_bytes() <= 64 * MiB + 8 * MiB  # one step
        back = second.new_frame()
        for _ in range(150):  # and comes back from it, whole
            second.pop(back)
        assert second.count == 0 and second.cached_bytes() == 0
    finally:
        first.close()
        second.close()


def test_a_new_piece_starts_with_nothing_pushed_out(tmp_path: Path) -> None:
    share = CacheShare(4 * MiB)
    spool = Spool(str(tmp_path), 640, 360, share)
    try:
        frame, out = _frame(), None
        for _ in range(40):  # 13 MiB into a 4 MiB budget
            spool.write(frame)
        assert spool.evicted > 0
        out = spool.new_frame()
        while spool.count:
            spool.pop(out)
        spool.write(frame)  # the next piece
        assert spool.evicted == 0 and spool.cached_bytes() == spool.frame_bytes
    finally:
        spool.close()
