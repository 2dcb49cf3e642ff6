"""Input checks before any reversal starts: the runbook's "duration/resolution/size checks".

Each refusal names the limit, the setting (TOML key and environment variable) and what the file
has, so an operator can tell a bad upload from a limit set too low.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmkeeper.adapters.ffmpeg import MediaInfo
from vmkeeper.errors import MediaRejected
from vmkeeper.settings import MediaSettings, env_name


@dataclass(frozen=True)
class MediaLimits:
    max_duration_s: float
    max_pixels: int
    max_size_bytes: int

    @classmethod
    def from_settings(cls, media: MediaSettings) -> MediaLimits:
        return cls(media.max_duration_s, media.max_pixels, media.max_size_bytes)


def _setting(name: str) -> str:
    key = f"media.{name}"
    return f"{key}, {env_name(key)}"


def check_file(path: Path, limits: MediaLimits) -> int:
    """The file's size, if it is a non-empty regular file within the size limit."""
    if not path.exists():
        raise MediaRejected(f"{path} does not exist.")
    if not path.is_file():
        raise MediaRejected(f"{path} is not a regular file.")
    size = path.stat().st_size
    if size == 0:
        raise MediaRejected(f"{path} is empty (0 bytes): it is not a video.")
    if size > limits.max_size_bytes:
        raise MediaRejected(
            f"{path} is {size} bytes, over the size limit of {limits.max_size_bytes} bytes "
            f"({_setting('max_size_bytes')})."
        )
    return size


def require_video(info: MediaInfo) -> None:
    if info.video is None:
        what = "audio only" if info.audio else "no video or audio stream"
        raise MediaRejected(
            f"{info.path} has no video stream ({what}): there is nothing to reverse.")


def check_media(info: MediaInfo, limits: MediaLimits) -> None:
    """Refuse what a small VM should not reverse; MediaRejected names limit, setting, value."""
    require_video(info)
    assert info.video is not None
    duration = info.duration_s
    if duration is None:
        raise MediaRejected(f"{info.path} has no known duration: remux it (e.g. to MP4) first.")
    if duration > limits.max_duration_s:
        raise MediaRejected(
            f"{info.path} lasts {duration:.1f} s, over the duration limit of "
            f"{limits.max_duration_s:g} s ({_setting('max_duration_s')})."
        )
    pixels = info.video.pixels
    if pixels > limits.max_pixels:
        raise MediaRejected(
            f"{info.path} is {info.video.width}x{info.video.height} ({pixels} pixels a frame), "
            f"over the resolution limit of {limits.max_pixels} pixels "
            f"({_setting('max_pixels')})."
        )
