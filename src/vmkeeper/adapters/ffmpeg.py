"""FFmpeg and FFprobe: where the programs are, argv built by pure functions, probe output parsed.

FFmpeg comes from PyPI, never the OS (the runbook's backend takes ffmpeg-static from npm the same
way): the ``ffmpeg`` binary from ``imageio-ffmpeg`` and FFmpeg's libraries in-process through PyAV
(``av``). Neither package ships ``ffprobe``; probing runs PyAV in a child process
(``python -P -m vmkeeper.media.worker probe FILE``), which prints the same JSON shape as
``ffprobe -show_format -show_streams -of json`` so one parser reads both. ``FFPROBE_PATH`` /
``FFMPEG_PATH`` point at other binaries when an operator wants them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from vmkeeper import proc
from vmkeeper.errors import CommandNotFound, CommandTimeout, MediaError, MediaRejected

# Started as the supervisor starts it for a reversal: importing vmkeeper runs nothing, so the
# worker pays only for PyAV and the modules it runs; -P keeps the working folder off sys.path.
WORKER_MODULE = "vmkeeper.media.worker"


@dataclass(frozen=True)
class VideoInfo:
    codec: str
    width: int
    height: int
    fps: float | None  # average frame rate
    nominal_fps: float | None  # r_frame_rate: the stream's base rate
    frame_count: int | None
    rotation: int  # degrees clockwise applied for display: 0, 90, 180 or 270
    pixel_format: str | None

    @property
    def display_width(self) -> int:
        return self.height if self.rotation in (90, 270) else self.width

    @property
    def display_height(self) -> int:
        return self.width if self.rotation in (90, 270) else self.height

    @property
    def pixels(self) -> int:
        return self.width * self.height


@dataclass(frozen=True)
class AudioInfo:
    codec: str
    sample_rate: int
    channels: int


@dataclass(frozen=True)
class MediaInfo:
    path: str
    format: str
    duration_s: float | None
    size_bytes: int
    bit_rate: int | None
    start_time_s: float
    video: VideoInfo | None
    audio: AudioInfo | None


def ffmpeg_binary(ffmpeg_path: str | None) -> str:
    """The ffmpeg program: the configured path, else the one imageio-ffmpeg ships."""
    if ffmpeg_path:
        return ffmpeg_path
    import imageio_ffmpeg  # imported late: only the bench and the tests need the binary

    return str(imageio_ffmpeg.get_ffmpeg_exe())


def build_probe_argv(file: Path, ffprobe_path: str | None) -> list[str]:
    """ffprobe's JSON when FFPROBE_PATH is set; else the PyAV probe in a child Python."""
    if ffprobe_path:
        return [ffprobe_path, "-v", "error", "-show_format", "-show_streams",
                "-of", "json", "--", str(file)]
    return [sys.executable, "-P", "-m", WORKER_MODULE, "probe", str(file)]


def encoder_args(video_codec: str, preset: str, crf: int, audio_codec: str,
                 audio_bitrate: str) -> list[str]:
    """The encoder half of an ffmpeg argv, the same settings vmkeeper's reversal uses."""
    return ["-c:v", video_codec, "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
            "-c:a", audio_codec, "-b:a", audio_bitrate, "-threads", "1",
            "-movflags", "+faststart"]


def build_whole_clip_reverse_argv(ffmpeg: str, src: Path, dst: Path,
                                  encoder: Sequence[str]) -> list[str]:
    """FFmpeg's own reverse,areverse: holds every decoded frame (the June 2026 OOM)."""
    return [ffmpeg, "-nostdin", "-v", "error", "-y", "-threads", "1", "-i", str(src),
            "-vf", "reverse", "-af", "areverse", *encoder, str(dst)]


def build_forward_transcode_argv(ffmpeg: str, src: Path, dst: Path,
                                 encoder: Sequence[str]) -> list[str]:
    """One decode and one encode with the same settings: the floor a reversal is measured by."""
    return [ffmpeg, "-nostdin", "-v", "error", "-y", "-threads", "1", "-i", str(src),
            *encoder, str(dst)]


def _rate(text: Any) -> float | None:
    try:
        value = Fraction(str(text))
    except (ValueError, ZeroDivisionError):
        return None
    return float(value) if value > 0 else None


def _number(text: Any) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def _rotation(stream: dict[str, Any]) -> int:
    # ffprobe prints the display matrix angle (counter-clockwise); ffmpeg's autorotate turns the
    # picture by its negative, which is what a viewer sees: report that, as 0/90/180/270.
    for side in stream.get("side_data_list") or []:
        if "rotation" in side:
            return round(-float(side["rotation"])) % 360
    tag = (stream.get("tags") or {}).get("rotate")
    return round(float(tag)) % 360 if tag else 0


def parse_probe_json(text: str, file: Path, size_bytes: int) -> MediaInfo:
    """Parse ffprobe-shaped JSON into MediaInfo; MediaRejected if it is not media."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        raise MediaRejected(f"{file} could not be probed: the prober printed no JSON.") from None
    fmt = data.get("format") or {}
    streams = data.get("streams") or []
    if not fmt or not streams:
        raise MediaRejected(f"{file} is not a media file (no streams found).")
    video: VideoInfo | None = None
    audio: AudioInfo | None = None
    for stream in streams:
        kind = stream.get("codec_type")
        disposition = stream.get("disposition") or {}
        if kind == "video" and video is None and not disposition.get("attached_pic"):
            frames = stream.get("nb_frames")
            video = VideoInfo(
                codec=str(stream.get("codec_name", "unknown")),
                width=int(stream.get("width") or 0),
                height=int(stream.get("height") or 0),
                fps=_rate(stream.get("avg_frame_rate")),
                nominal_fps=_rate(stream.get("r_frame_rate")),
                frame_count=int(frames) if frames not in (None, "", "N/A", 0, "0") else None,
                rotation=_rotation(stream),
                pixel_format=stream.get("pix_fmt"),
            )
        elif kind == "audio" and audio is None:
            audio = AudioInfo(
                codec=str(stream.get("codec_name", "unknown")),
                sample_rate=int(stream.get("sample_rate") or 0),
                channels=int(stream.get("channels") or 0),
            )
    bit_rate = _number(fmt.get("bit_rate"))
    return MediaInfo(
        path=str(file),
        format=str(fmt.get("format_name", "unknown")),
        duration_s=_number(fmt.get("duration")),
        size_bytes=size_bytes,
        bit_rate=int(bit_rate) if bit_rate else None,
        start_time_s=_number(fmt.get("start_time")) or 0.0,
        video=video,
        audio=audio,
    )


def probe(file: Path, *, ffprobe_path: str | None, timeout_s: float,
          ask: Callable[[Path, float], proc.Result] | None = None) -> MediaInfo:
    """Probe ``file`` in a child process killed after ``timeout_s`` (FFPROBE_TIMEOUT_MS).

    ``ask`` is a PyAV prober already running (``media/warm.py``), used instead of starting one
    unless FFPROBE_PATH asks for ffprobe. Raises MediaRejected when the file is not media or is
    truncated, MediaError when the prober times out or cannot run.
    """
    size = file.stat().st_size
    argv = build_probe_argv(file, ffprobe_path)
    try:
        if ask is not None and not ffprobe_path:
            result = ask(file, timeout_s)
        else:
            result = proc.run(argv, timeout=timeout_s, check=False)
    except CommandTimeout:
        raise MediaError(
            f"Probing {file} took longer than {timeout_s:g} s (media.ffprobe_timeout_ms, "
            "FFPROBE_TIMEOUT_MS) and was stopped: the file may be damaged, or raise the limit."
        ) from None
    except CommandNotFound as error:
        raise MediaError(f"The prober could not start: {error}") from None
    if result.returncode != 0:
        reason = _worker_error(result.stdout) or proc.tail(result.stderr, 3) or "unknown error"
        raise MediaRejected(f"{file} is not readable media: {reason}.")
    return parse_probe_json(result.stdout, file, size)


def _worker_error(stdout: str) -> str | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(message, dict) and message.get("type") == "error":
            return str(message.get("message", "")).rstrip(".")
    return None

