"""Peak memory and wall time of three ways to reverse a clip, as ratios to a forward transcode.

(a) FFmpeg's whole-clip ``reverse,areverse`` with -threads 1 (what took the VM down),
(b) a forward transcode with the same encoder settings (the floor: one decode, one encode),
(c) ``vmkeeper media reverse``. Memory is sampled every 50 ms over the whole process tree: the
sum of RSS (shared pages counted in every process) and of PSS (shared pages split). For (c) the
cell also splits the RSS peak, at the sample where the tree peaked, into the root process (the
CLI, which after the input checks has exec'd the stdlib-only supervisor: same PID) and its
largest child (the PyAV worker), and gives the root's own peak over the whole run (the CLI
before exec, during the probe, when the worker is not running). Each row ends with the 1-minute
load average before and after it. Both
baselines run FFmpeg with ``-threads 1`` before ``-i`` (decoder) and after it (encoder), as (c)
runs its decoder and encoder single-threaded.

    .venv/bin/python bench/reverse.py --sizes 720p,1080p --durations 30,60,120 --skip-a-over 3000
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

from vmkeeper import logs, proc
from vmkeeper.adapters.ffmpeg import (
    build_forward_transcode_argv,
    build_whole_clip_reverse_argv,
    encoder_args,
    ffmpeg_binary,
)
from vmkeeper.settings import MediaSettings

SIZES = {"720p": "1280x720", "1080p": "1920x1080"}


def measure(argv: list[str], parts: dict[str, int] | None = None) -> tuple[float, int, int]:
    """Wall seconds, peak tree RSS and peak tree PSS (bytes) of ``argv`` and its children.

    ``parts`` receives the RSS of the root process and of its largest child at the sample where
    the tree's RSS peaked, and the root's own peak over the run (``root_peak``).
    """
    started = time.monotonic()
    peak_rss = peak_pss = 0
    parts = parts if parts is not None else {}
    parts.update(root=0, child=0, root_peak=0)
    with proc.start(argv, timeout=3600, stdout=proc.DEVNULL, stderr=proc.PIPE) as running:
        root = psutil.Process(running.pid)
        while running.poll() is None:
            rss = pss = root_rss = child_rss = 0
            try:
                for process in [root, *root.children(recursive=True)]:
                    info = process.memory_full_info()
                    rss += info.rss
                    pss += info.pss
                    if process.pid == root.pid:
                        root_rss = info.rss
                    else:
                        child_rss = max(child_rss, info.rss)
            except psutil.Error:
                pass
            parts["root_peak"] = max(parts["root_peak"], root_rss)
            if rss > peak_rss:
                parts.update(root=root_rss, child=child_rss)
            peak_rss, peak_pss = max(peak_rss, rss), max(peak_pss, pss)
            time.sleep(0.05)
        code = running.wait()
        if code != 0:
            err = running.stderr.read().decode(errors="replace") if running.stderr else ""
            raise SystemExit(f"{argv[0]} failed ({code}): {err[-500:]}")
    return time.monotonic() - started, peak_rss, peak_pss


def make_clip(ffmpeg: str, path: Path, size: str, seconds: int) -> None:
    # The shared notes' inputs: testsrc2 + a sine with a beep, x264 veryfast GOP 60, AAC 48 kHz.
    proc.run([ffmpeg, "-nostdin", "-v", "error", "-y",
              "-f", "lavfi", "-i", f"testsrc2=size={size}:rate=30:duration={seconds}",
              "-f", "lavfi", "-i", f"sine=frequency=440:beep_factor=4:sample_rate=48000:"
              f"duration={seconds}",
              "-c:v", "libx264", "-preset", "veryfast", "-crf", "23", "-g", "60",
              "-pix_fmt", "yuv420p", "-c:a", "aac", "-b:a", "128k", "-threads", "1", str(path)],
             timeout=3600)


def mib(value: int) -> str:
    return f"{value / 2**20:,.0f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="720p,1080p")
    parser.add_argument("--durations", default="30,60,120")
    parser.add_argument("--skip-a-over", type=float, default=4000,
                        help="skip (a) when its estimated peak exceeds this many MiB")
    args = parser.parse_args()
    media = MediaSettings()
    ffmpeg = ffmpeg_binary(media.ffmpeg_path)
    encoder = encoder_args(media.video_codec, media.preset, media.crf, media.audio_codec,
                           media.audio_bitrate)
    vmkeeper = str(Path(sys.executable).with_name("vmkeeper"))
    print("| clip | (a) whole-clip reverse: peak RSS / PSS MiB, s | (b) forward: peak RSS / PSS "
          "MiB, s | (c) vmkeeper: peak RSS / PSS MiB, s | (c)/(b) RSS | (c)/(b) PSS | "
          "(c)/(b) time | load |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="bench-reverse-") as folder:
        work = Path(folder)
        for size in args.sizes.split(","):
            width, height = (int(v) for v in SIZES[size].split("x"))
            for seconds in (int(d) for d in args.durations.split(",")):
                clip = work / f"{size}-{seconds}.mp4"
                make_clip(ffmpeg, clip, SIZES[size], seconds)
                load_before = os.getloadavg()[0]
                frames_mib = width * height * 1.5 * 30 * seconds / 2**20
                if frames_mib + 250 > args.skip_a_over:
                    a = f"skipped (~{frames_mib + 250:,.0f} MiB expected)"
                else:
                    t, rss, pss = measure(build_whole_clip_reverse_argv(
                        ffmpeg, clip, work / "a.mp4", encoder))
                    a = f"{mib(rss)} / {mib(pss)}, {t:.1f}"
                tb, rb, pb = measure(build_forward_transcode_argv(ffmpeg, clip, work / "b.mp4",
                                                                  encoder))
                parts: dict[str, int] = {}
                tc, rc, pc = measure([vmkeeper, "media", "reverse", str(clip),
                                      str(work / "c.mp4"), "--json"], parts)
                print(f"| {size}30 {seconds} s | {a} | {mib(rb)} / {mib(pb)}, {tb:.1f} | "
                      f"{mib(rc)} / {mib(pc)}, {tc:.1f} (supervisor {mib(parts['root'])} + "
                      f"worker {mib(parts['child'])}; CLI before exec "
                      f"{mib(parts['root_peak'])}) | {rc / rb:.2f} | {pc / pb:.2f} | "
                      f"{tc / tb:.2f} | {load_before:.1f}–{os.getloadavg()[0]:.1f} |",
                      flush=True)
                for name in ("a.mp4", "b.mp4", "c.mp4", clip.name):
                    (work / name).unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    logs.configure()  # an entry point: importing vmkeeper configures nothing
    sys.exit(main())
