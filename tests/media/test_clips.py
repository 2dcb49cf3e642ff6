"""The clip generator makes what it says: codec, size, pixel format, rotation, VFR, offset,
sound."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import av
import pytest

from vmkeeper.adapters.ffmpeg import parse_probe_json
from vmkeeper.media.avprobe import probe_file
from vmkeeper.media.clips import Clip, Codec, Content, Sound, make_clip

pytestmark = pytest.mark.slow

CASES = {
    "h264.mp4": (Clip(), "h264", (160, 120), "yuv420p"),
    "open_gop.mp4": (Clip(codec=Codec.H264_OPEN_GOP, gop=20, bframes=3), "h264", (160, 120),
                     "yuv420p"),
    "hevc.mp4": (Clip(codec=Codec.HEVC, content=Content.MANDELBROT, grain=12, size="320x180"),
                 "hevc", (320, 180), "yuv420p"),
    "vp9.webm": (Clip(codec=Codec.VP9, content=Content.LIFE, grain=12, size="320x180"), "vp9",
                 (320, 180), "yuv420p"),
    "odd444.mp4": (Clip(size="161x121", pix_fmt="yuv444p"), "h264", (161, 121), "yuv444p"),
    "odd_vp9.mkv": (Clip(size="161x121", codec=Codec.VP9), "vp9", (161, 121), "yuv420p"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_each_codec_and_size_is_what_was_asked(tmp_path: Path, name: str) -> None:
    clip, codec, size, pix_fmt = CASES[name]
    path = make_clip(tmp_path / name, clip)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = list(container.decode(stream))
    assert stream.codec_context.name == codec
    assert (frames[0].width, frames[0].height) == size and frames[0].format.name == pix_fmt
    assert len(frames) == clip.rate * clip.seconds


def test_rotation_offset_vfr_and_surround(tmp_path: Path) -> None:
    path = make_clip(tmp_path / "all.mp4", Clip(rotation=90, start_s=1.5, vfr=True,
                                                sound=Sound.SURROUND))
    info = parse_probe_json(json.dumps(probe_file(str(path))), path, 1)
    # -display_rotation is counter-clockwise; vmkeeper reports what a viewer sees, clockwise.
    assert info.video is not None and info.video.rotation == 270
    assert info.audio is not None and info.audio.channels == 6
    assert info.start_time_s == pytest.approx(1.5, abs=0.05)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        pts = sorted(p.pts for p in container.demux(stream) if p.size)
    gaps = {round(float((b - a) * stream.time_base), 3) for a, b in itertools.pairwise(pts)}
    assert gaps == {0.033, 0.067}  # 30 fps, and 20 fps every other second


def test_an_odd_420_h264_clip_is_refused_in_one_sentence(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"use pix_fmt='yuv444p' or Codec\.VP9"):
        make_clip(tmp_path / "odd.mp4", Clip(size="161x121"))
