"""Inputs generated once per session with the project's clip generator (media/clips.py): small
and short, so fast."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from vmkeeper.adapters.ffmpeg import ffmpeg_binary
from vmkeeper.media.clips import Clip, Codec, Sound, make_audio, make_clip

FFMPEG = ffmpeg_binary(None)


@dataclass(frozen=True)
class Clips:
    basic: Path
    qvga: Path
    long_gop: Path
    short_tail: Path
    rotated: Path
    vfr: Path
    odd: Path
    odd_vp9: Path
    open_gop: Path
    offset: Path
    short_audio: Path
    long_audio: Path
    silent: Path
    tiny: Path
    audio_only: Path
    slow: Path


@pytest.fixture(scope="session")
def clips(tmp_path_factory: pytest.TempPathFactory) -> Clips:
    d = tmp_path_factory.mktemp("clips")
    return Clips(
        basic=make_clip(d / "basic.mp4", Clip()),
        qvga=make_clip(d / "qvga.mp4", Clip(size="320x240", seconds=2, gop=60)),
        long_gop=make_clip(d / "long_gop.mp4", Clip(seconds=4, gop=300)),
        # GOPs of 30, 30 and 6 frames: the last is short, so the fill spools two pieces.
        short_tail=make_clip(d / "short_tail.mp4", Clip(seconds=2.2)),
        rotated=make_clip(d / "rotated.mp4", Clip(seconds=2, rotation=90)),
        # Every other second at 20 of 30 fps: a true mirror must keep each frame's duration.
        vfr=make_clip(d / "vfr.mp4", Clip(seconds=3, vfr=True)),
        # Odd sizes: H.264 4:2:0 cannot have them, so 4:4:4 and VP9 4:2:0 (chroma 81x61).
        odd=make_clip(d / "odd.mp4", Clip(size="161x121", seconds=2, pix_fmt="yuv444p")),
        odd_vp9=make_clip(d / "odd.mkv", Clip(size="161x121", seconds=2, codec=Codec.VP9)),
        open_gop=make_clip(d / "open_gop.mp4", Clip(seconds=3, gop=20, bframes=3,
                                                    codec=Codec.H264_OPEN_GOP)),
        offset=make_clip(d / "offset.mp4", Clip(seconds=2, start_s=1.5)),
        short_audio=make_clip(d / "short_audio.mp4", Clip(seconds=3, audio_seconds=2)),
        long_audio=make_clip(d / "long_audio.mp4", Clip(seconds=2, audio_seconds=3)),
        silent=make_clip(d / "silent.mp4", Clip(seconds=2, sound=Sound.NONE)),
        tiny=make_clip(d / "tiny.mp4", Clip(seconds=0.5)),
        audio_only=make_audio(d / "audio_only.m4a", seconds=2),
        # Seconds of work on any machine, while its probe takes a fraction of one.
        slow=make_clip(d / "slow.mp4", Clip(size="1280x720", seconds=20, gop=60)),
    )
