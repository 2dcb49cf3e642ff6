"""The output of a reversal: one long-lived video encoder, one audio encoder, the muxer; and the
check of what was written (frames, video span, audio samples) before the file may be renamed.

Imported by the reversal worker only (``media/reverse.py``): PyAV and the standard library.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any, NamedTuple

import av

from vmkeeper.media.frames import ReversalFailed, VideoIndex, VideoReader, single_thread
from vmkeeper.media.job import ReverseJob
from vmkeeper.media.pcm import Audio, reversed_chunk

_AUDIO_CHUNK_S = 1  # seconds of PCM read back per step: 384 KiB for 48 kHz stereo float


def _bit_rate(text: str) -> int:
    text = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * factor)


class Output:
    def __init__(self, job: ReverseJob, reader: VideoReader, audio: Audio | None,
                 rate: Fraction | None) -> None:
        self.container = av.open(job.output, "w", format=job.container,
                                 options={"movflags": "+faststart"}
                                 if job.container in ("mp4", "mov") else {})
        encoder = job.encoder
        options = {"preset": encoder.preset, "crf": str(encoder.crf)} \
            if encoder.video_codec.startswith("libx264") else {}
        video: Any = self.container.add_stream(encoder.video_codec, rate=rate, options=options)
        video.width = reader.converter.width
        video.height = reader.converter.height
        video.pix_fmt = "yuv420p"
        video.codec_context.time_base = reader.index.time_base
        video.time_base = reader.index.time_base
        single_thread(video)
        self.video = video
        self.audio_stream: Any = None
        self.audio = audio
        self.audio_done = 0
        if audio is not None:
            stream: Any = self.container.add_stream(encoder.audio_codec, rate=audio.sample_rate,
                                               layout=audio.layout)
            if not encoder.audio_codec.startswith("pcm_"):
                stream.codec_context.bit_rate = _bit_rate(encoder.audio_bitrate)
            stream.codec_context.time_base = Fraction(1, audio.sample_rate)
            single_thread(stream)
            self.audio_stream = stream
            self.pcm = audio.pcm.open("rb")

    def encode_video(self, frame: Any) -> None:
        for packet in self.video.encode(frame):
            self.container.mux(packet)

    def audio_until(self, seconds: float) -> list[Any]:
        """Encode the reversed audio up to ``seconds`` of output; the packets, muxed before
        the piece's video of that time (the muxer interleaves by timestamp either way, and
        buffers what comes early until the other stream catches up: a piece of sound, ~32 KB
        for 2 s, rather than a piece of video packets, which at 720p60 were 6.7 MiB).

        Called from the decoding thread, one piece ahead (``reverse.spooled_pieces``): the
        audio encoder is that thread's alone, the muxer the encoding thread's."""
        packets: list[Any] = []
        if self.audio is None:
            return packets
        target = min(self.audio.samples, round(seconds * self.audio.sample_rate))
        step = self.audio.sample_rate * _AUDIO_CHUNK_S
        while self.audio_done < target:
            stop = min(target, self.audio_done + step)
            frame = av.AudioFrame(format="flt", layout=self.audio.layout,
                                  samples=stop - self.audio_done)
            frame.planes[0].update(reversed_chunk(self.pcm, self.audio, self.audio_done, stop))
            frame.sample_rate = self.audio.sample_rate
            frame.pts = self.audio_done
            frame.time_base = Fraction(1, self.audio.sample_rate)
            packets.extend(self.audio_stream.encode(frame))
            self.audio_done = stop
        return packets

    def mux(self, packets: list[Any]) -> None:
        for packet in packets:
            self.container.mux(packet)

    def close(self) -> None:
        for packet in self.video.encode(None):
            self.container.mux(packet)
        if self.audio_stream is not None:
            assert self.audio is not None
            self.mux(self.audio_until(self.audio.samples / self.audio.sample_rate))
            self.mux(self.audio_stream.encode(None))
            self.pcm.close()
        self.container.close()


class OutputFacts(NamedTuple):
    frames: int
    video_duration_s: float
    audio_samples: int


def measure_output(path: str) -> OutputFacts:
    """Count what the output holds: video packets, video span, decoded audio samples."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        frames = 0
        low: int | None = None
        high: int | None = None
        for packet in container.demux(stream):
            if packet.size == 0 or packet.pts is None:
                continue
            frames += 1
            end = packet.pts + (packet.duration or 0)
            low = packet.pts if low is None else min(low, packet.pts)
            high = end if high is None else max(high, end)
        duration = 0.0
        if low is not None and high is not None and stream.time_base is not None:
            duration = float((high - low) * stream.time_base)
        samples = 0
        if container.streams.audio:
            container.seek(0)
            audio = container.streams.audio[0]
            single_thread(audio)
            samples = sum(frame.samples for frame in container.decode(audio))
    return OutputFacts(frames, duration, samples)


def verify(index: VideoIndex, audio: Audio | None, facts: OutputFacts,
            audio_frame: int) -> None:
    span = index.seconds(index.end_pts - index.pts[0])
    frame_s = span / index.frames
    problems = []
    if facts.frames != index.frames:
        problems.append(f"{facts.frames} video frames, expected {index.frames}")
    if abs(facts.video_duration_s - span) > frame_s + 1e-3:
        problems.append(f"video lasts {facts.video_duration_s:.3f} s, expected {span:.3f} s")
    expected = audio.samples if audio else 0
    if abs(facts.audio_samples - expected) > audio_frame:
        problems.append(f"{facts.audio_samples} audio samples, expected {expected}")
    if problems:
        raise ReversalFailed("the output is not right: " + "; ".join(problems))
