"""Where a reversal's time goes: CPU seconds per stage of the worker, beside a forward transcode.

Runs ``media/reverse.py:reverse_file`` in this process with each stage wrapped in a timer of
the calling thread's CPU time (``time.thread_time``: what the stage cost, whatever else runs on
the shared machine), and FFmpeg's forward transcode of the same clip (the floor, its CPU
seconds from ``getrusage``). Stages: index (demux, no decoding), audio to PCM, video decode,
colour conversion, spool write, spool read-back, video encode (libx264 and muxing), audio
reverse + encode, verification (re-reading the output). Wall seconds of both beside.

Then where the encoding thread, the one the reversal's wall time is, had nothing to encode: the
seconds before its first frame, and the waits between two frames (their sum, the waits over
10 ms, the longest and after which frame) — a wait costs no CPU, so the stages above cannot
show it (a short last GOP once left x264 idle 0.74 s there, docs/media.md).

    nice -n -5 .venv/bin/python bench/reverse_profile.py CLIP [CLIP ...]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import functools
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from vmkeeper import proc
from vmkeeper.adapters.ffmpeg import build_forward_transcode_argv, encoder_args, ffmpeg_binary
from vmkeeper.media import frames, output, reverse, spool
from vmkeeper.media.job import EncoderSpec, ReverseJob
from vmkeeper.settings import MediaSettings

STAGES: dict[str, tuple[Any, str]] = {
    "index": (reverse, "index_video"),
    "audio to PCM": (reverse, "decode_audio_to_pcm"),
    "colour conversion": (frames.Converter, "convert"),
    "spool write": (spool.Spool, "write"),
    "spool read-back": (spool.Spool, "pop"),
    "video encode + mux": (output.Output, "encode_video"),
    "audio reverse + encode": (output.Output, "audio_until"),
    "audio mux": (output.Output, "mux"),
    "flush + close": (output.Output, "close"),
    "verification": (reverse, "measure_output"),
}

_cpu: dict[str, float] = collections.defaultdict(float)
_wall: dict[str, float] = collections.defaultdict(float)  # the same, wall seconds
_lock = threading.Lock()
_active = threading.local()
_untimed_decode: Callable[..., Iterator[Any]] = iter


@contextlib.contextmanager
def timed(stage: str) -> Iterator[None]:
    # Nested stages (decode inside a spool write's caller) count once, in the innermost.
    outer = getattr(_active, "stage", None)
    start, wall_start = time.thread_time(), time.monotonic()
    _active.stage = stage
    try:
        yield
    finally:
        spent, wall = time.thread_time() - start, time.monotonic() - wall_start
        _active.stage = outer
        with _lock:
            _cpu[stage] += spent
            _wall[stage] += wall
            if outer is not None:
                _cpu[outer] -= spent
                _wall[outer] -= wall


def wrap(stage: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed_call(*args: Any, **kwargs: Any) -> Any:
        with timed(stage):
            return function(*args, **kwargs)
    return timed_call


def timed_decode(container: Any, stream: Any, keyframe_pts: int | None = None) -> Iterator[Any]:
    decoded = _untimed_decode(container, stream, keyframe_pts)
    while True:
        with timed("video decode"):
            try:
                frame = next(decoded)
            except StopIteration:
                return
        yield frame


class Idle:
    """When the encoding thread encodes: its first frame, and the gaps between two frames."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        """A reversal starts now."""
        self.started = time.monotonic()
        self.first: float | None = None
        self.last: float | None = None
        self.frames = 0
        self.gaps: list[tuple[float, int]] = []  # (seconds, frames encoded before it)

    def encoding(self, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def watched(*args: Any, **kwargs: Any) -> Any:
            now = time.monotonic()
            if self.first is None:
                self.first = now - self.started
            elif self.last is not None:
                self.gaps.append((now - self.last, self.frames))
            try:
                return function(*args, **kwargs)
            finally:
                self.frames += 1
                self.last = time.monotonic()
        return watched

    def report(self) -> str:
        waits = sum(gap for gap, _ in self.gaps)
        long = [gap for gap, _ in self.gaps if gap > 0.010]
        longest, after = max(self.gaps, default=(0.0, 0))
        first = self.first or 0.0
        return (f"x264 idle: {first:.2f} s before its first frame; {waits:.2f} s between "
                f"frames, {len(long)} waits over 10 ms ({sum(long):.2f} s), the longest "
                f"{longest:.3f} s after frame {after} of {self.frames}")


_idle = Idle()


def install() -> None:
    for stage, (owner, name) in STAGES.items():
        watched = getattr(owner, name)
        if stage == "video encode + mux":
            watched = _idle.encoding(watched)
        setattr(owner, name, wrap(stage, watched))
    global _untimed_decode
    _untimed_decode = frames._decoded
    frames._decoded = timed_decode


def forward_cpu(clip: Path, out: Path) -> tuple[float, float]:
    media = MediaSettings()
    encoder = encoder_args(media.video_codec, media.preset, media.crf, media.audio_codec,
                           media.audio_bitrate)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc.run(build_forward_transcode_argv(ffmpeg_binary(None), clip, out, encoder),
             timeout=3600)
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime


def profile(clip: Path, folder: Path) -> None:
    _cpu.clear()
    _wall.clear()
    job = ReverseJob(source=str(clip), output=str(folder / "c.mp4"), container="mp4",
                     temp_dir=str(folder), frame_budget_bytes=96 * 2**20,
                     encoder=EncoderSpec())
    cpu_before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.monotonic()
    _idle.reset()
    reverse.reverse_file(job, lambda done, total: None)
    wall = time.monotonic() - started
    cpu_after = resource.getrusage(resource.RUSAGE_SELF)
    total = (cpu_after.ru_utime + cpu_after.ru_stime
             - cpu_before.ru_utime - cpu_before.ru_stime)
    b_wall, b_cpu = forward_cpu(clip, folder / "b.mp4")
    print(f"\n{clip.name}: reversal {wall:.2f} s wall, {total:.2f} s CPU; forward transcode "
          f"{b_wall:.2f} s wall, {b_cpu:.2f} s CPU (ratio CPU {total / b_cpu:.2f})\n")
    print("| stage | CPU s | share of the reversal's CPU | wall s (in its thread) |")
    print("|---|---|---|---|")
    for stage, seconds in sorted(_cpu.items(), key=lambda item: -item[1]):
        print(f"| {stage} | {seconds:.2f} | {100 * seconds / total:.1f} % | "
              f"{_wall[stage]:.2f} |")
    rest = total - sum(_cpu.values())
    print(f"| the rest (Python, threads, queues) | {rest:.2f} | {100 * rest / total:.1f} % | |")
    print(f"\n{_idle.report()}")
    for name in ("b.mp4", "c.mp4"):
        (folder / name).unlink(missing_ok=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", nargs="+", type=Path)
    args = parser.parse_args()
    install()
    with tempfile.TemporaryDirectory(prefix="bench-reverse-profile-") as folder:
        for clip in args.clips:
            profile(clip, Path(folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
