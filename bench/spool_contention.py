"""Does the spool's traffic on the other core slow x264? Encoder CPU seconds beside spool loads.

The question behind #18's last gap (Game of Life 1080p 120 s): the reversal's libx264 spent
~6 % more CPU than FFmpeg's on the same content, and a ``dd`` on the other core once slowed a
pinned x264 by 14 %. This runs one forward libx264 encode (PyAV, ``threads=1``, veryfast,
crf 23: the reversal's settings) pinned to core 0 and reports its thread's CPU seconds, with
core 1 either idle or running a spool-shaped load at the encoder's frame rate: a GOP of frames
written as fast as it goes, then read back newest first, truncated behind each read —

- ``buffered``: through vmkeeper's own ``media.spool.Spool`` (page cache, capped by
  ``media.memory_budget_mb`` with POSIX_FADV_DONTNEED, as the reversal does);
- ``direct``: the same bytes with ``O_DIRECT`` through one 4 KiB-aligned buffer (the proposed
  change: no page cache at all), the frame copied into and out of that buffer.

The baseline is ``none`` (core 1 idle) of the same round; loads alternate within a round so
slow drift of the shared host shows up as spread between rounds, not as a load's effect.

    nice -n -5 .venv/bin/python bench/spool_contention.py CLIP [--repeat 2] [--fps 30]
"""

from __future__ import annotations

import argparse
import contextlib
import mmap
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vmkeeper import proc
from vmkeeper.settings import MediaSettings

LOADS = ("none", "buffered", "direct")
_ALIGN = 4096  # O_DIRECT: buffer address, length and file offset in whole logical blocks


def encode(clip: str) -> float:
    """CPU seconds of the thread running libx264 over ``clip`` (decoding it untimed)."""
    import av

    source = av.open(clip)
    video = source.streams.video[0]
    video.thread_type = "NONE"
    video.codec_context.thread_count = 1
    with tempfile.TemporaryDirectory() as work:
        sink = av.open(str(Path(work) / "out.mp4"), "w")
        media = MediaSettings()  # the reversal's encoder settings, not a copy of them
        stream = sink.add_stream(media.video_codec, rate=video.average_rate,
                                 options={"preset": media.preset, "crf": str(media.crf)})
        stream.width, stream.height = video.codec_context.width, video.codec_context.height
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        spent = 0.0
        for frame in source.decode(video):
            frame.pict_type = 0  # let x264 choose, as the reversal does
            started = time.thread_time()
            for packet in stream.encode(frame):
                sink.mux(packet)
            spent += time.thread_time() - started
        for packet in stream.encode(None):
            sink.mux(packet)
        sink.close()
    source.close()
    return spent


def load(mode: str, width: int, height: int, gop: int, fps: float, seconds: float) -> None:
    """Spool-shaped traffic until ``seconds`` pass (it stops by itself; the runner kills it)."""
    from vmkeeper.media.spool import CacheShare, Spool, spool_directory

    # Where a reversal would spool (not tmpfs: O_DIRECT is refused there, and it is RAM).
    directory = spool_directory(tempfile.gettempdir(), str(Path.cwd() / "output"))
    share = CacheShare(MediaSettings().memory_budget_mb * 1024 * 1024)
    spool = Spool(directory, width, height, share)
    frame = spool.new_frame()
    for plane in frame.planes:
        memoryview(plane)[:] = os.urandom(plane.buffer_size)
    slot = -(-spool.frame_bytes // _ALIGN) * _ALIGN
    bounce = mmap.mmap(-1, slot)  # page-aligned: what O_DIRECT needs of the buffer
    direct = (os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_DIRECT, 0o600)
              if mode == "direct" else -1)  # the buffered load writes through ``spool`` only
    views = spool._views(frame)  # the spool's own tight layout of a frame
    end, period, due = time.monotonic() + seconds, 1 / fps, time.monotonic()
    while time.monotonic() < end:
        for number in range(gop):
            if mode == "buffered":
                spool.write(frame)
            else:
                at = 0
                for view in views:  # the copy into the aligned buffer the change would need
                    bounce[at: at + len(view)] = view
                    at += len(view)
                os.pwrite(direct, bounce, number * slot)
        for number in reversed(range(gop)):
            if mode == "buffered":
                spool.pop(frame)
            else:
                os.preadv(direct, [bounce], number * slot)
                os.ftruncate(direct, number * slot)
                at = 0
                for view in views:  # and back into the frame's planes
                    view[:] = bounce[at: at + len(view)]
                    at += len(view)
            due += period  # one frame read back per frame the encoder takes, as in a reversal
            time.sleep(max(0.0, due - time.monotonic()))


def child(role: list[str], core: int) -> list[str]:
    return [sys.executable, __file__, "--role", *role, "--core", str(core)]


def one_round(args: argparse.Namespace, width: int, height: int) -> dict[str, float]:
    spent: dict[str, float] = {}
    encoder = child(["encode", str(args.clip)], 0)
    for mode in LOADS:
        generator = child(["load", mode, str(width), str(height), str(args.gop),
                           str(args.fps), "1800"], 1)
        beside = (contextlib.nullcontext() if mode == "none" else
                  proc.start(generator, timeout=1800, stdout=proc.DEVNULL, stderr=proc.DEVNULL))
        with beside:
            spent[mode] = float(proc.run(encoder, timeout=1800).stdout)
    return spent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path)
    parser.add_argument("--repeat", type=int, default=2, help="rounds of all loads")
    parser.add_argument("--fps", type=float, default=30.0, help="frames read back per second")
    parser.add_argument("--gop", type=int, default=60, help="frames per spooled piece")
    parser.add_argument("--role", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--core", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:
        os.sched_setaffinity(0, {args.core})
        if args.role[0] == "encode":
            print(f"{encode(args.role[1]):.3f}")
        else:
            mode, width, height, gop, fps, seconds = args.role[1:]
            load(mode, int(width), int(height), int(gop), float(fps), float(seconds))
        return
    if args.clip is None or not args.clip.is_file():
        raise SystemExit("give a clip to encode, e.g. /tmp/vmkeeper-bench-clips/"
                         "life-1920x1080-30.mp4 (bench/reverse.py makes and keeps it)")
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs two cores: the encoder on one, the load on the other")
    import av

    with av.open(str(args.clip)) as probe:
        context = probe.streams.video[0].codec_context
        width, height = context.width, context.height
    rounds = [one_round(args, width, height) for _ in range(args.repeat)]
    print(f"{args.clip.name}: libx264's thread CPU s on core 0; load on core 1; "
          f"ratio to `none` of the same round; {args.fps:g} frames/s read back")
    print("| load on core 1 | " + " | ".join(f"round {n + 1}" for n in range(len(rounds)))
          + " | median ratio |")
    print("|---|" + "---|" * (len(rounds) + 1))
    for mode in LOADS:
        cells = [f"{spent[mode]:.1f} s ({spent[mode] / spent['none']:.2f}×)" for spent in rounds]
        ratio = statistics.median(spent[mode] / spent["none"] for spent in rounds)
        print(f"| {mode} | " + " | ".join(cells) + f" | {ratio:.2f}× |")


if __name__ == "__main__":
    main()
