"""Probe a file with PyAV, printing what ``ffprobe -show_format -show_streams -of json`` would.

Runs inside the worker process (``python -P -m vmkeeper.media.worker probe FILE``) so the caller
can kill it on FFPROBE_TIMEOUT_MS: FFmpeg's libraries cannot be interrupted in-process.
"""

from __future__ import annotations

import os
from fractions import Fraction
from typing import Any

import av


class ProbeFailed(Exception):
    """The file is not media, is truncated, or cannot be read; the message says which."""


def _fraction(value: Fraction | None) -> str:
    return f"{value.numerator}/{value.denominator}" if value else "0/0"


def _check_complete(container: Any, path: str) -> None:
    # An MP4 whose moov atom came first (+faststart) opens fine even when the media data was cut
    # short: the index promises samples the file no longer has. Read the packets after the last
    # keyframe and check they reach the stream's declared end, inside the file.
    size = os.path.getsize(path)
    stream = container.streams.video[0]
    if not stream.duration or stream.duration <= 0:
        return
    start = stream.start_time or 0
    expected_end = start + stream.duration
    slack = stream.duration // max(stream.frames or 1, 1) + 1  # about one frame
    container.seek(expected_end, stream=stream, backward=True)
    reached = None
    for packet in container.demux(stream):
        if not packet.size or packet.pts is None:
            continue
        if packet.pos is not None and packet.pos >= 0 and packet.pos + packet.size > size:
            reached = None
            break
        end = packet.pts + (packet.duration or 0)
        reached = end if reached is None else max(reached, end)
    if reached is None or reached < expected_end - slack:
        raise ProbeFailed(f"the file is truncated (its index promises video up to "
                          f"{float(expected_end * stream.time_base):.3f} s that the data "
                          "does not hold)")


def probe_file(path: str) -> dict[str, Any]:
    try:
        container = av.open(path, "r")
    except av.error.InvalidDataError:
        raise ProbeFailed("not a media file, or truncated (FFmpeg found no valid data)") from None
    except av.error.FFmpegError as error:
        raise ProbeFailed(f"FFmpeg cannot open it ({error.strerror})") from None
    with container:
        streams: list[dict[str, Any]] = []
        for stream in container.streams:
            entry: dict[str, Any] = {"index": stream.index, "codec_type": stream.type,
                                     "codec_name": stream.codec_context.name}
            if stream.type == "video":
                context: Any = stream.codec_context
                entry.update(width=context.width, height=context.height,
                             pix_fmt=context.pix_fmt,
                             avg_frame_rate=_fraction(stream.average_rate),
                             r_frame_rate=_fraction(stream.base_rate),
                             nb_frames=str(stream.frames or 0),
                             disposition={"attached_pic": int(bool(
                                 stream.disposition & av.stream.Disposition.attached_pic))})
                entry["side_data_list"] = [{"rotation": _display_rotation(container, stream)}]
            elif stream.type == "audio":
                context = stream.codec_context
                entry.update(sample_rate=str(context.sample_rate),
                             channels=context.channels)
            streams.append(entry)
        duration = container.duration / 1_000_000 if container.duration else None
        start = container.start_time / 1_000_000 if container.start_time else 0.0
        result = {
            "format": {"format_name": container.format.name,
                       "duration": f"{duration:.6f}" if duration is not None else None,
                       "start_time": f"{start:.6f}",
                       "size": str(os.path.getsize(path)),
                       "bit_rate": str(container.bit_rate) if container.bit_rate else None},
            "streams": streams,
        }
        if container.streams.video:
            _check_complete(container, path)
        return result


def _display_rotation(container: Any, stream: Any) -> float:
    # PyAV exposes the display matrix on frames, not streams: decode the first frame.
    stream.codec_context.thread_count = 1
    try:
        for frame in container.decode(stream):
            return float(frame.rotation or 0)
    except av.error.FFmpegError as error:
        raise ProbeFailed(f"its video cannot be decoded ({error.strerror})") from None
    finally:
        container.seek(0)
    raise ProbeFailed("its video stream has no decodable frame (empty or truncated)")
