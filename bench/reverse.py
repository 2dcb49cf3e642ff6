"""Peak memory and wall time of reversing a clip, as ratios to a forward transcode (the floor).

(b) the baseline: FFmpeg's forward transcode with the reversal's encoder settings, decoder and
encoder single-threaded (``-threads 1`` before ``-i`` and after it: with it only before, x264
still runs 3 threads); (c) ``vmkeeper media reverse … --json``, the whole command (CLI, probe
child, the supervisor the CLI exec'd, the PyAV worker), input checks and output verification
included; optionally (a) FFmpeg's whole-clip ``reverse,areverse`` (what took the VM down).

Time and memory come from separate runs. The timed runs (wall, CPU of the whole tree) have
nothing watching them: reading every process's ``smaps`` every 50 ms is CPU taken from the
measured on a 2-core machine, and more of it for a tree of two processes than for one. The
memory run samples the whole process tree every 50 ms: the **tree's resident memory, each
page once** (the physical frames the tree's processes map, from ``/proc/PID/pagemap``: root
only; what the tree takes from the machine), beside the sum of RSS (a page two processes
share, such as the interpreter the supervisor and the worker both run, counted in each) and of
PSS (shared pages split, also with processes outside the tree). Content comes from
``media/clips.py``: ``testsrc2`` (the easiest picture there is) beside footage-like content
(fractal zoom, life, cellular automaton, scaled up with film grain), open-GOP H.264, HEVC,
VP9, 60 fps, VFR and an odd size (whose baseline crops to even, as the reversal does: libx264
refuses odd 4:2:0). Each configuration runs ``--repeat`` timed times, (b) and (c)
alternating, and keeps the fastest of each (the minimum is the least disturbed run), then one
memory run of each; each row ends with the 1-minute load average before and after it. Clips
are kept in ``--clips`` between runs.

    nice -n -5 .venv/bin/python bench/reverse.py --kinds mandelbrot,life --sizes 720p,1080p \
        --durations 30,120
"""

from __future__ import annotations

import argparse
import array
import compileall
import os
import resource
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import psutil

import vmkeeper as vmkeeper_package
from vmkeeper import logs, proc
from vmkeeper.adapters.ffmpeg import (
    build_forward_transcode_argv,
    build_whole_clip_reverse_argv,
    encoder_args,
    ffmpeg_binary,
)
from vmkeeper.media.clips import Clip, Codec, Content, Sound, cached_clip
from vmkeeper.settings import MediaSettings

SIZES = {"720p": "1280x720", "1080p": "1920x1080"}
_REAL = Clip(content=Content.MANDELBROT, grain=12, gop=60, bframes=3, sound=Sound.BEEP)
KINDS: dict[str, Clip] = {
    "testsrc2": Clip(gop=60, bframes=3, sound=Sound.BEEP),
    "mandelbrot": _REAL,
    "life": replace(_REAL, content=Content.LIFE),
    "cellauto": replace(_REAL, content=Content.CELLAUTO),
    "open-gop": replace(_REAL, codec=Codec.H264_OPEN_GOP),
    "hevc": replace(_REAL, codec=Codec.HEVC),
    "vp9": replace(_REAL, codec=Codec.VP9),
    "60fps": replace(_REAL, rate=60, gop=120),
    "vfr": replace(_REAL, vfr=True),
    "odd": replace(_REAL, codec=Codec.VP9),  # sized 853x479 below
}
EVEN_CROP = ["-vf", "crop=trunc(iw/2)*2:trunc(ih/2)*2"]


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu: float  # user + system seconds of the whole tree (less noisy than wall time)


@dataclass(frozen=True)
class Memory:
    pages: int  # peak of the tree's resident memory, each physical page once, bytes (0: not root)
    rss: int  # peak of the tree's summed RSS, bytes
    pss: int


_PAGE = os.sysconf("SC_PAGE_SIZE")
_PRESENT = 1 << 63
_FRAME = (1 << 55) - 1


def resident_frames(pid: int) -> set[int]:
    """The physical page frames ``pid`` has resident (its maps looked up in its pagemap); empty
    unless root, for whom alone the kernel fills the frame numbers in."""
    frames: set[int] = set()
    with (open(f"/proc/{pid}/maps", encoding="ascii", errors="replace") as maps,
          open(f"/proc/{pid}/pagemap", "rb") as pagemap):
        for line in maps:
            low, high = (int(part, 16) for part in line.split(maxsplit=1)[0].split("-"))
            if low >= 1 << 47:  # [vsyscall]: not in the pagemap
                continue
            pagemap.seek(low // _PAGE * 8)
            entries = array.array("Q", pagemap.read((high - low) // _PAGE * 8))
            frames.update(entry & _FRAME for entry in entries if entry & _PRESENT)
    frames.discard(0)
    return frames


def _succeeded(running: proc.Running, argv: list[str]) -> None:
    """Wait for ``running``; a failed command ends the benchmark with its stderr's tail."""
    code = running.wait()
    if code != 0:
        err = running.stderr.read().decode(errors="replace") if running.stderr else ""
        raise SystemExit(f"{argv[0]} failed ({code}): {err[-500:]}")


def measure(argv: list[str]) -> Run:
    """Wall seconds and CPU seconds of ``argv`` and all its children; nothing samples it."""
    started = time.monotonic()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with proc.start(argv, timeout=3600, stdout=proc.DEVNULL, stderr=proc.PIPE) as running:
        _succeeded(running, argv)
    # Descendants count once waited for: the probe child by the CLI, the worker by the
    # supervisor, each command by this process.
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return Run(time.monotonic() - started, cpu)


def measure_memory(argv: list[str]) -> Memory:
    """Peak resident memory of ``argv``'s whole process tree, sampled every 50 ms."""
    peak_pages = peak_rss = peak_pss = 0
    with proc.start(argv, timeout=3600, stdout=proc.DEVNULL, stderr=proc.PIPE) as running:
        root = psutil.Process(running.pid)
        while running.poll() is None:
            rss = pss = 0
            frames: set[int] = set()
            try:
                for process in [root, *root.children(recursive=True)]:
                    info = process.memory_full_info()
                    rss, pss = rss + info.rss, pss + info.pss
                    frames |= resident_frames(process.pid)
            except (psutil.Error, OSError):  # a process gone between two reads
                pass
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            peak_pages = max(peak_pages, len(frames) * _PAGE)
            time.sleep(0.05)
        _succeeded(running, argv)
    return Memory(peak_pages, peak_rss, peak_pss)


def fastest(runs: list[Run]) -> Run:
    return Run(min(r.seconds for r in runs), min(r.cpu for r in runs))


def mib(value: int) -> str:
    return f"{value / 2**20:,.0f}"


def clip_for(kind: str, size: str, seconds: float) -> tuple[str, Clip]:
    clip = replace(KINDS[kind], size="853x479" if kind == "odd" else SIZES[size], seconds=seconds)
    return f"{kind} {clip.size}@{clip.rate} {seconds:g} s", clip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kinds", default="mandelbrot", help=", ".join(KINDS))
    parser.add_argument("--sizes", default="720p,1080p")
    parser.add_argument("--durations", default="30,120")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--whole-clip", action="store_true", help="also run (a), if it fits")
    parser.add_argument("--skip-a-over", type=float, default=3000,
                        help="skip (a) when its estimated peak exceeds this many MiB")
    parser.add_argument("--clips", type=Path,
                        default=Path(tempfile.gettempdir()) / "vmkeeper-bench-clips")
    args = parser.parse_args()
    # vmkeeper's bytecode, as an installed package has it (pip compiles at install): where
    # PYTHONDONTWRITEBYTECODE is set (this VM kind sets it) an editable install would compile
    # every module on every run, ~20 ms of the CLI's start before its probe (measured).
    compileall.compile_dir(Path(vmkeeper_package.__file__).parent, quiet=1)
    media = MediaSettings()
    ffmpeg = ffmpeg_binary(media.ffmpeg_path)
    encoder = encoder_args(media.video_codec, media.preset, media.crf, media.audio_codec,
                           media.audio_bitrate)
    vmkeeper = str(Path(sys.executable).with_name("vmkeeper"))
    print("| clip | (b) forward: memory / RSS / PSS MiB, wall s, CPU s | (c) vmkeeper: the same "
          "| (c)/(b) memory | (c)/(b) RSS | (c)/(b) PSS | (c)/(b) wall | (c)/(b) CPU "
          "| (c)−(b) wall s | (a) whole-clip | load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-reverse-") as folder:
        work = Path(folder)
        for kind in args.kinds.split(","):
            for size in args.sizes.split(","):
                for seconds in (float(d) for d in args.durations.split(",")):
                    label, clip = clip_for(kind, size, seconds)
                    suffix = ".webm" if clip.codec is Codec.VP9 else ".mp4"
                    name = f"{kind}-{clip.size}-{seconds:g}{suffix}"
                    source = cached_clip(args.clips, name, clip, ffmpeg=ffmpeg)
                    row(label, clip, source, work, ffmpeg, vmkeeper, encoder, kind, args)
    return 0


def row(label: str, clip: Clip, source: Path, work: Path, ffmpeg: str, vmkeeper: str,
        encoder: list[str], kind: str, args: argparse.Namespace) -> None:
    load_before = os.getloadavg()[0]
    forward = encoder + (EVEN_CROP if kind == "odd" else [])
    b_argv = build_forward_transcode_argv(ffmpeg, source, work / "b.mp4", forward)
    c_argv = [vmkeeper, "media", "reverse", str(source), str(work / "c.mp4"), "--json"]
    b_runs, c_runs = [], []
    for _ in range(args.repeat):
        b_runs.append(measure(b_argv))
        c_runs.append(measure(c_argv))
    b, c = fastest(b_runs), fastest(c_runs)
    b_mem, c_mem = measure_memory(b_argv), measure_memory(c_argv)
    a = "—"
    if args.whole_clip:
        width, height = clip.dimensions
        # Every decoded frame held (yuv420p), on top of the floor.
        estimate = width * height * 1.5 * clip.rate * clip.seconds + b.rss
        if estimate / 2**20 > args.skip_a_over:
            a = f"skipped (~{estimate / 2**20:,.0f} MiB)"
        else:
            a_argv = build_whole_clip_reverse_argv(ffmpeg, source, work / "a.mp4", forward)
            run, memory = measure(a_argv), measure_memory(a_argv)
            a = f"{mib(memory.rss)} / {mib(memory.pss)}, {run.seconds:.1f}"
    pages = f"{c_mem.pages / b_mem.pages:.2f}" if b_mem.pages else "- (not root)"
    print(f"| {label} | {mib(b_mem.pages)} / {mib(b_mem.rss)} / {mib(b_mem.pss)}, "
          f"{b.seconds:.2f}, {b.cpu:.2f} | {mib(c_mem.pages)} / {mib(c_mem.rss)} / "
          f"{mib(c_mem.pss)}, {c.seconds:.2f}, {c.cpu:.2f} | {pages} | "
          f"{c_mem.rss / b_mem.rss:.2f} | {c_mem.pss / b_mem.pss:.2f} | "
          f"{c.seconds / b.seconds:.2f} | {c.cpu / b.cpu:.2f} | "
          f"{c.seconds - b.seconds:+.2f} | {a} | "
          f"{load_before:.1f}–{os.getloadavg()[0]:.1f} |", flush=True)
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (work / name).unlink(missing_ok=True)


if __name__ == "__main__":
    logs.configure()  # an entry point: importing vmkeeper configures nothing
    sys.exit(main())
