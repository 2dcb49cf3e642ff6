"""The sound of a reversal: decoded forward once to float PCM in a file, read back backwards.

Why: encoding AAC per piece adds encoder priming at every join (0.7 s of drift per 30 s); one
forward decode to a file is constant memory, and one encode of the reversed samples is exact.
Imported by the reversal worker only (``media/reverse.py``): PyAV and the standard library.
"""

from __future__ import annotations

import array
from pathlib import Path
from typing import Any, NamedTuple

import av

from vmkeeper.media.frames import single_thread


class Audio(NamedTuple):
    pcm: Path
    samples: int
    sample_rate: int
    layout: str
    channels: int


def decode_audio_to_pcm(container: Any, pcm: Path, start_s: float,
                        span_s: float) -> Audio | None:
    """The first audio stream of ``container`` (opened, not read yet; closed here) as float PCM
    covering exactly the video's span, silence-padded.

    A non-zero start time or audio longer/shorter than the video would otherwise shift the
    reversed sound against the picture.
    """
    with container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        single_thread(stream)
        rate = stream.codec_context.sample_rate
        layout = stream.codec_context.layout.name
        channels = stream.codec_context.channels
        total = round(span_s * rate)
        # Samples past the audio track's declared end are encoder padding that FFmpeg's own
        # decode drops too (PyAV does not): treat them as absent.
        end = total
        if stream.duration and stream.time_base is not None:
            declared = float((stream.duration + (stream.start_time or 0)) * stream.time_base)
            end = min(total, max(0, round((declared - start_s) * rate)))
        width = 4 * channels
        resampler = av.AudioResampler(format="flt", layout=layout, rate=rate)
        written = 0
        expected: int | None = None
        with pcm.open("wb") as out:
            for frame in container.decode(stream):
                position = expected
                if frame.pts is not None and frame.time_base is not None:
                    stamped = round((float(frame.pts * frame.time_base) - start_s) * rate)
                    # Trust the running count unless the timestamps jump by more than a frame.
                    if position is None or abs(stamped - position) > frame.samples:
                        position = stamped
                if position is None:
                    position = written
                expected = position + frame.samples
                for chunk in resampler.resample(frame):
                    data = bytes(chunk.planes[0])[: chunk.samples * width]
                    skip = max(0, written - position)
                    if position > written:
                        gap = max(0, min(position, end) - written)
                        out.write(bytes(gap * width))
                        written += gap
                    room = max(0, end - written)
                    data = data[skip * width:][: room * width]
                    out.write(data)
                    written += len(data) // width
                    position += chunk.samples
            if written < total:
                out.write(bytes((total - written) * width))
    return Audio(pcm, total, rate, layout, channels)


def reversed_chunk(handle: Any, audio: Audio, first: int, stop: int) -> bytes:
    """Output samples [first, stop) = input samples [N - stop, N - first), backwards."""
    width = 4 * audio.channels
    handle.seek((audio.samples - stop) * width)
    forward = array.array("f")
    forward.frombytes(handle.read((stop - first) * width))
    backward = array.array("f", bytes(len(forward) * 4))
    for channel in range(audio.channels):
        # Reverse each channel on its own: reversing the interleaved run would swap L and R.
        backward[channel::audio.channels] = forward[channel::audio.channels][::-1]
    return backward.tobytes()

