"""Independent checks with the ffmpeg binary: per-frame checksums and raw audio samples."""

from __future__ import annotations

import array
import json
import tempfile
import time
from pathlib import Path

import av

from tests.media.conftest import FFMPEG
from vmkeeper import proc
from vmkeeper.media.service import ReverseResult, reverse
from vmkeeper.settings import MediaSettings

# Lossless video (x264 crf 0) and float PCM in MOV: the output can then be compared exactly.
LOSSLESS = MediaSettings(crf=0, audio_codec="pcm_f32le", memory_budget_mb=1)


def frame_md5s(path: Path, video_filter: str | None = None) -> list[str]:
    args = [FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:v:0"]
    if video_filter:
        args += ["-vf", video_filter]
    args += ["-fps_mode", "passthrough", "-f", "framemd5", "-"]
    out = proc.run(args, timeout=120).stdout
    return [line.rsplit(",", 1)[1].strip() for line in out.splitlines()
            if line and not line.startswith("#")]


def samples(path: Path) -> tuple[array.array[float], int]:
    """Interleaved float samples as FFmpeg decodes them, and the channel count."""
    with av.open(str(path)) as container:
        channels = container.streams.audio[0].codec_context.channels
    with tempfile.TemporaryDirectory() as folder:
        raw = Path(folder) / "audio.f32"
        proc.run([FFMPEG, "-nostdin", "-v", "error", "-i", str(path), "-map", "0:a:0",
                  "-f", "f32le", str(raw)], timeout=120)
        data = array.array("f")
        data.frombytes(raw.read_bytes())
    return data, channels


def reversed_samples(data: array.array[float], channels: int) -> array.array[float]:
    out = array.array("f", bytes(len(data) * 4))
    for channel in range(channels):
        out[channel::channels] = data[channel::channels][::-1]
    return out


def video_pts_seconds(path: Path) -> list[float]:
    return video_times(path)[0]


def video_times(path: Path) -> tuple[list[float], float]:
    """Every frame's time in presentation order, and where the last one ends (its packet's
    duration: what the file says, not a guess from the gaps before it)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        packets = sorted((p.pts, p.duration or 0) for p in container.demux(stream)
                         if p.size and p.pts is not None)
        assert stream.time_base is not None and packets
        end = packets[-1][0] + packets[-1][1]
        return [float(p * stream.time_base) for p, _ in packets], float(end * stream.time_base)


def audio_offset_and_span(path: Path) -> tuple[int, int]:
    """Samples from the audio's start to the first frame, and samples in the video's span."""
    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        assert video.time_base is not None and audio.time_base is not None
        start = float((video.start_time or 0) * video.time_base)
        rate = audio.codec_context.sample_rate
        skip = round((start - float((audio.start_time or 0) * audio.time_base)) * rate)
    pts = video_pts_seconds(path)
    span = pts[-1] + (pts[-1] - pts[-2]) - pts[0]
    return skip, round(span * rate)


def run(settings: MediaSettings, src: Path, dst: Path,
        deadline: float | None = 120.0) -> ReverseResult:
    messages: list[str] = []
    logs: list[dict[str, object]] = []

    class Log:
        def info(self, event: str, **fields: object) -> None:
            logs.append({"event": event, **fields})

        warning = info

    until = time.monotonic() + deadline if deadline else None
    result = reverse(settings, src, dst, messages.append, until, log=Log())
    assert len(logs) == 1 and json.dumps(logs[0], default=str)
    return result
