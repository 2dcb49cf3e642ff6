"""What x264 spends on VFR content played backwards, apart from the reversal's pipeline.

Every frame of a VFR clip (``media/clips.py``'s kind: every other second at 20 of 30 fps) is
decoded up front, then encoded by PyAV with the reversal's x264 settings in four ways: forward
with its own times (the baseline, what a forward transcode does); backwards with mirrored times
(what ``vmkeeper media reverse`` writes: each frame shown as long as it was); backwards with the
forward times (what FFmpeg's ``reverse`` filter writes: frames re-timed into the forward
slots); backwards with mirrored times and x264's rate control told the input is constant-rate
(``force-cfr=1``, timestamps kept). Printed: video bytes (ratio to the baseline) and PSNR
against the source in display order (FFmpeg's ``psnr`` filter). Result in docs/media.md.

    .venv/bin/python bench/vfr_bits.py [--size 1280x720] [--seconds 4]
"""

from __future__ import annotations

import argparse
import re
import tempfile
from dataclasses import replace
from fractions import Fraction
from pathlib import Path
from typing import Any

import av

from vmkeeper import proc
from vmkeeper.adapters.ffmpeg import ffmpeg_binary
from vmkeeper.media.clips import Clip, Content, Sound, cached_clip
from vmkeeper.settings import MediaSettings

MODES = {
    "forward, its own times (baseline)": ("forward", "own", ""),
    "backwards, mirrored times (vmkeeper)": ("backward", "mirror", ""),
    "backwards, forward times (FFmpeg's reverse)": ("backward", "forward", ""),
    "backwards, mirrored times, force-cfr=1": ("backward", "mirror", "force-cfr=1"),
}


def decoded(source: Path) -> tuple[list[Any], list[int], int, Fraction]:
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        frames = [frame.reformat(format="yuv420p") for frame in container.decode(stream)]
        time_base = stream.time_base
    pts = [int(frame.pts or 0) for frame in frames]
    end = pts[-1] + (pts[-1] - pts[-2])  # the last frame lasts as long as the one before it
    if time_base is None:
        raise SystemExit(f"{source} has no time base")
    return frames, pts, end, time_base


def encode(target: Path, frames: list[Any], pts: list[int], end: int, time_base: Fraction,
           order: str, times: str, params: str, media: MediaSettings) -> None:
    options = {"preset": media.preset, "crf": str(media.crf)}
    if params:
        options["x264-params"] = params
    with av.open(str(target), "w") as output:
        stream: Any = output.add_stream(media.video_codec, rate=30, options=options)
        stream.width, stream.height, stream.pix_fmt = frames[0].width, frames[0].height, "yuv420p"
        stream.thread_type = "NONE"
        stream.codec_context.thread_count = 1
        stream.codec_context.time_base = stream.time_base = time_base
        positions = range(len(frames))
        for slot, index in enumerate(reversed(positions) if order == "backward" else positions):
            frame = frames[index]
            frame.pict_type = av.video.frame.PictureType.NONE
            if times == "mirror":
                frame.pts = end - (pts[index + 1] if index + 1 < len(pts) else end)
            elif times == "forward":
                frame.pts = pts[slot]
            else:
                frame.pts = pts[index]
            frame.time_base = time_base
            output.mux(stream.encode(frame))
        output.mux(stream.encode())


def psnr(ffmpeg: str, encoded: Path, source: Path, backward: bool) -> str:
    turn = "reverse," if backward else ""
    graph = f"[0:v]setpts=N/TB[a];[1:v]{turn}setpts=N/TB[b];[a][b]psnr"
    result = proc.run([ffmpeg, "-nostdin", "-i", str(encoded), "-i", str(source),
                       "-lavfi", graph, "-f", "null", "-"], timeout=600, check=False)
    found = re.search(r"average:([0-9.]+|inf)", result.stderr)
    return found.group(1) if found else "?"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--clips", type=Path,
                        default=Path(tempfile.gettempdir()) / "vmkeeper-bench-clips")
    args = parser.parse_args()
    media = MediaSettings()
    ffmpeg = ffmpeg_binary(media.ffmpeg_path)
    clip = replace(Clip(content=Content.MANDELBROT, grain=12, gop=60, bframes=3,
                        sound=Sound.BEEP, vfr=True), size=args.size, seconds=args.seconds)
    args.clips.mkdir(parents=True, exist_ok=True)
    source = cached_clip(args.clips, f"vfr-{args.size}-{args.seconds:g}.mp4", clip,
                         ffmpeg=ffmpeg)
    frames, pts, end, time_base = decoded(source)
    print(f"VFR {args.size} {args.seconds:g} s, {len(frames)} frames, x264 {media.preset} "
          f"crf {media.crf}, one thread")
    print("| encode | video bytes | vs baseline | PSNR dB |")
    print("|---|---|---|---|")
    baseline = 0
    with tempfile.TemporaryDirectory(prefix="bench-vfr-") as folder:
        for label, (order, times, params) in MODES.items():
            target = Path(folder) / "out.mp4"
            encode(target, frames, pts, end, time_base, order, times, params, media)
            size = target.stat().st_size
            baseline = baseline or size
            print(f"| {label} | {size:,} | {size / baseline:.3f} | "
                  f"{psnr(ffmpeg, target, source, order == 'backward')} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
