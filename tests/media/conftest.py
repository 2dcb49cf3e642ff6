"""Inputs generated once per session with FFmpeg's lavfi sources: small and short, so fast.

testsrc2's picture changes every frame, so a lost, doubled or swapped frame changes a checksum;
the stereo tone has a different pitch per channel, so a channel swap shows too. AAC is encoded
with PNS off (-aac_pns 0): PNS noise would make decodes differ slightly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from vmkeeper import proc
from vmkeeper.adapters.ffmpeg import ffmpeg_binary

FFMPEG = ffmpeg_binary(None)
AUDIO = "aevalsrc=sin(440*2*PI*t)*0.5|sin(660*2*PI*t)*0.4:s=48000:d={d}"


def ffmpeg(*args: str | Path) -> None:
    proc.run([FFMPEG, "-nostdin", "-v", "error", "-y", *args], timeout=120)


def make_clip(path: Path, *, size: str = "160x120", rate: int = 30, seconds: float = 3,
              gop: int = 30, audio_seconds: float | None = None, video_filter: str | None = None,
              extra: Sequence[str] = (), audio: bool = True) -> Path:
    args: list[str | Path] = ["-f", "lavfi", "-i",
                              f"testsrc2=size={size}:rate={rate}:duration={seconds}"]
    if audio:
        args += ["-f", "lavfi", "-i", AUDIO.format(d=audio_seconds or seconds)]
    if video_filter:
        args += ["-vf", video_filter, "-fps_mode", "passthrough"]
    args += ["-c:v", "libx264", "-preset", "veryfast", "-g", str(gop), "-bf", "2",
             "-pix_fmt", "yuv420p"]
    if audio:
        args += ["-c:a", "aac", "-aac_pns", "0", "-b:a", "192k"]
    ffmpeg(*args, *extra, path)
    return path


@dataclass(frozen=True)
class Clips:
    basic: Path
    qvga: Path
    long_gop: Path
    rotated: Path
    vfr: Path
    odd: Path
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
    unrotated = make_clip(d / "unrotated.mp4", seconds=2)
    ffmpeg("-display_rotation:v:0", "90", "-i", unrotated, "-c", "copy", d / "rotated.mp4")
    ffmpeg("-f", "lavfi", "-i", AUDIO.format(d=2), "-c:a", "aac", d / "audio_only.m4a")
    return Clips(
        basic=make_clip(d / "basic.mp4"),
        qvga=make_clip(d / "qvga.mp4", size="320x240", seconds=2, gop=60),
        long_gop=make_clip(d / "long_gop.mp4", seconds=4, gop=300),
        rotated=d / "rotated.mp4",
        # 20 frames at 20 fps, then 30 fps: a true mirror must keep each frame's duration.
        vfr=make_clip(d / "vfr.mp4", seconds=3,
                      video_filter="settb=1/600,setpts='if(lt(N,20),N/20,1+(N-20)/30)/TB'"),
        odd=make_clip(d / "odd.mp4", size="161x121", seconds=2),
        offset=make_clip(d / "offset.mp4", seconds=2, extra=["-output_ts_offset", "1.5"]),
        short_audio=make_clip(d / "short_audio.mp4", seconds=3, audio_seconds=2),
        long_audio=make_clip(d / "long_audio.mp4", seconds=2, audio_seconds=3),
        silent=make_clip(d / "silent.mp4", seconds=2, audio=False),
        tiny=make_clip(d / "tiny.mp4", seconds=0.5),
        audio_only=d / "audio_only.m4a",
        slow=make_clip(d / "slow.mp4", size="640x480", seconds=6, gop=60),
    )
