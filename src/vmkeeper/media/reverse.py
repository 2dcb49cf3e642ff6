"""Reverse a video in flat memory with PyAV: one process, one decoder, one long-lived encoder.

Why this shape (docs/media.md, shared notes on video reversal): FFmpeg's ``reverse`` filter keeps
every decoded frame (3.3 GiB for ~35 s of 1080p30: the June 2026 OOM). Here the video is cut into
pieces of whole GOPs where the memory budget allows (frames per piece = budget / bytes of one
decoded frame after rotation and padding); pieces are decoded from the end, each from its own
keyframe, their frames kept and fed newest-first into a single encoder. No process start per
piece, no second process holding a second copy of FFmpeg, and each frame decoded about once.

Audio is decoded forward once to raw PCM in a temporary file (constant memory), trimmed or padded
to the video's span, then read backwards in chunks and encoded once: encoding per piece adds AAC
priming at every join (the 0.7 s per 30 s drift).

Runs inside ``python -m vmkeeper.media.worker`` so the parent can kill it on the runbook's
FFMPEG_REVERSE_TIMEOUT_MS; nothing here prints.
"""

from __future__ import annotations

import array
import bisect
import resource
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.filter
from av.video.frame import PictureType

from vmkeeper.media.job import ReverseJob, ReverseStats

Progress = Callable[[int, int], None]

_AUDIO_CHUNK_S = 1  # seconds of PCM read back per step: 384 KiB for 48 kHz stereo float


class ReversalFailed(Exception):
    """The reversal could not be done or its output is not what was expected."""


@dataclass(frozen=True)
class VideoIndex:
    """Every frame's timestamp in presentation order, from the packets (no decoding)."""

    pts: list[int]
    keyframe_positions: list[int]  # index into ``pts`` of each keyframe, ascending
    keyframe_seek: list[int]  # the timestamp to seek to for each keyframe
    end_pts: int  # where the last frame ends
    time_base: Fraction

    @property
    def frames(self) -> int:
        return len(self.pts)

    def seconds(self, ticks: int) -> float:
        return float(ticks * self.time_base)

    def next_pts(self, position: int) -> int:
        return self.pts[position + 1] if position + 1 < len(self.pts) else self.end_pts


@dataclass(frozen=True)
class Piece:
    first: int  # first frame (position in presentation order)
    stop: int  # one past the last frame
    gop: int  # index of the keyframe to decode from


def _single_thread(stream: Any) -> None:
    # The runbook's `-threads 1`: frame threads would hold a frame per thread, slice threads
    # fight the other apps on a 2-core VM.
    stream.thread_type = "NONE"
    stream.codec_context.thread_count = 1


def index_video(source: str) -> VideoIndex:
    with av.open(source) as container:
        stream = container.streams.video[0]
        time_base = stream.time_base
        if time_base is None:
            raise ReversalFailed("the video stream has no time base")
        pts: list[int] = []
        keys: list[tuple[int, int]] = []
        last_pts, last_duration = None, 0
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            if packet.pts is None:
                raise ReversalFailed("video packets carry no timestamps; remux it to MP4 first")
            pts.append(packet.pts)
            if packet.is_keyframe:
                # Seek by the keyframe's pts: FFmpeg's MP4 demuxer matches seek targets against
                # presentation times, and a dts (earlier, with B-frames) lands a GOP too early.
                keys.append((packet.pts, packet.pts))
            if last_pts is None or packet.pts > last_pts:
                last_pts, last_duration = packet.pts, packet.duration or 0
    if not pts or not keys:
        raise ReversalFailed("the video stream has no frames (or no keyframe)")
    pts.sort()
    if len(set(pts)) != len(pts):
        raise ReversalFailed("two video frames share a timestamp; remux the file first")
    if last_duration <= 0:
        gaps = sorted(b - a for a, b in zip(pts, pts[1:])) or [int(1 / (30 * time_base)) or 1]
        last_duration = gaps[len(gaps) // 2]
    keys.sort()
    positions = [bisect.bisect_left(pts, key_pts) for key_pts, _ in keys]
    seeks = [seek for _, seek in keys]
    if positions[0] != 0:  # open-GOP leading frames before the first keyframe belong to it
        positions[0] = 0
    return VideoIndex(pts, positions, seeks, pts[-1] + last_duration, time_base)


def plan_pieces(index: VideoIndex, frames_per_piece: int) -> list[Piece]:
    """Whole GOPs merged up to the budget; a GOP over the budget split evenly (re-decoded)."""
    bounds = [*index.keyframe_positions, index.frames]
    pieces: list[Piece] = []
    current: Piece | None = None
    for gop, (first, stop) in enumerate(zip(bounds, bounds[1:])):
        size = stop - first
        if size <= 0:
            continue
        if current is not None and stop - current.first <= frames_per_piece:
            current = Piece(current.first, stop, current.gop)
            continue
        if current is not None:
            pieces.append(current)
            current = None
        if size <= frames_per_piece:
            current = Piece(first, stop, gop)
            continue
        parts = -(-size // frames_per_piece)
        step = -(-size // parts)
        for start in range(first, stop, step):
            pieces.append(Piece(start, min(start + step, stop), gop))
    if current is not None:
        pieces.append(current)
    return pieces


class _Converter:
    """Rotation, even size and yuv420p, explicit and identical for every piece."""

    def __init__(self, first: Any, time_base: Fraction) -> None:
        self.rotation = int(round(-(first.rotation or 0))) % 360  # clockwise, as autorotate
        graph = av.filter.Graph()
        node = graph.add_buffer(width=first.width, height=first.height, format=first.format.name,
                                time_base=time_base)
        steps: list[tuple[str, str]] = {
            90: [("transpose", "clock")],
            180: [("hflip", ""), ("vflip", "")],
            270: [("transpose", "cclock")],
        }.get(self.rotation, [])
        # libx264 refuses odd sizes in 4:2:0: pad the right/bottom edge by one pixel.
        steps += [("pad", "ceil(iw/2)*2:ceil(ih/2)*2"), ("format", "yuv420p")]
        for name, args in steps:
            nxt = graph.add(name, args) if args else graph.add(name)
            node.link_to(nxt)
            node = nxt
        sink = graph.add("buffersink")
        node.link_to(sink)
        graph.configure()
        self.graph = graph
        width, height = first.width, first.height
        if self.rotation in (90, 270):
            width, height = height, width
        self.width, self.height = width + width % 2, height + height % 2

    @property
    def frame_bytes(self) -> int:
        return int(self.width * self.height * 3 // 2)

    def convert(self, frame: Any) -> Any:
        self.graph.push(frame)
        return self.graph.pull()


def _decoded(container: Any, stream: Any) -> Iterator[Any]:
    for packet in container.demux(stream):
        yield from packet.decode()


def _seek(container: Any, stream: Any, timestamp: int) -> None:
    container.seek(timestamp, stream=stream, backward=True, any_frame=False)
    stream.codec_context.flush_buffers()


class _VideoReader:
    def __init__(self, source: str, index: VideoIndex) -> None:
        self.container = av.open(source)
        self.stream = self.container.streams.video[0]
        _single_thread(self.stream)
        self.index = index
        self.decoded = 0
        first = next(_decoded(self.container, self.stream))
        self.converter = _Converter(first, index.time_base)

    def close(self) -> None:
        self.container.close()

    def read(self, piece: Piece) -> list[Any]:
        """The piece's frames, converted, in presentation order; exactly stop - first of them."""
        pts = self.index.pts
        start = pts[piece.first]
        stop = pts[piece.stop] if piece.stop < len(pts) else None
        # Seek to the piece's keyframe; if the demuxer lands later than that (an index that
        # disagrees with the packets), fall back one keyframe at a time.
        for gop in range(piece.gop, -1, -1):
            _seek(self.container, self.stream, self.index.keyframe_seek[gop])
            kept: list[Any] = []
            landed_late = False
            for frame in _decoded(self.container, self.stream):
                self.decoded += 1
                if frame.pts is None:
                    raise ReversalFailed("a decoded video frame has no timestamp")
                if not kept and frame.pts > start:  # the piece's first frame was skipped
                    landed_late = True
                    break
                if frame.pts < start:
                    continue
                if stop is not None and frame.pts >= stop:
                    break
                kept.append(self.converter.convert(frame))
            if landed_late:
                continue
            if len(kept) != piece.stop - piece.first:
                raise ReversalFailed(
                    f"frames {piece.first}-{piece.stop - 1} decoded as {len(kept)} frames, "
                    f"expected {piece.stop - piece.first}: the file is damaged"
                )
            return kept
        raise ReversalFailed(f"no keyframe before frame {piece.first} could be decoded")


def _bit_rate(text: str) -> int:
    text = text.strip().lower()
    factor = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * factor)


@dataclass
class _Audio:
    pcm: Path
    samples: int
    sample_rate: int
    layout: str
    channels: int


def decode_audio_to_pcm(source: str, pcm: Path, start_s: float, span_s: float) -> _Audio | None:
    """The first audio stream as float PCM covering exactly the video's span, silence-padded.

    A non-zero start time or audio longer/shorter than the video would otherwise shift the
    reversed sound against the picture.
    """
    with av.open(source) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        _single_thread(stream)
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
    return _Audio(pcm, total, rate, layout, channels)


def _reversed_chunk(handle: Any, audio: _Audio, first: int, stop: int) -> bytes:
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


class _Output:
    def __init__(self, job: ReverseJob, reader: _VideoReader, audio: _Audio | None,
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
        _single_thread(video)
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
            _single_thread(stream)
            self.audio_stream = stream
            self.pcm = audio.pcm.open("rb")

    def encode_video(self, frame: Any) -> None:
        for packet in self.video.encode(frame):
            self.container.mux(packet)

    def encode_audio_until(self, seconds: float) -> None:
        """Reversed audio up to ``seconds`` of output, so the file stays interleaved."""
        if self.audio is None:
            return
        target = min(self.audio.samples, round(seconds * self.audio.sample_rate))
        step = self.audio.sample_rate * _AUDIO_CHUNK_S
        while self.audio_done < target:
            stop = min(target, self.audio_done + step)
            frame = av.AudioFrame(format="flt", layout=self.audio.layout,
                                  samples=stop - self.audio_done)
            frame.planes[0].update(_reversed_chunk(self.pcm, self.audio, self.audio_done, stop))
            frame.sample_rate = self.audio.sample_rate
            frame.pts = self.audio_done
            frame.time_base = Fraction(1, self.audio.sample_rate)
            for packet in self.audio_stream.encode(frame):
                self.container.mux(packet)
            self.audio_done = stop

    def close(self) -> None:
        for packet in self.video.encode(None):
            self.container.mux(packet)
        if self.audio_stream is not None:
            self.encode_audio_until(self.audio.samples / self.audio.sample_rate)  # type: ignore[union-attr]
            for packet in self.audio_stream.encode(None):
                self.container.mux(packet)
            self.pcm.close()
        self.container.close()


@dataclass(frozen=True)
class OutputFacts:
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
            _single_thread(audio)
            samples = sum(frame.samples for frame in container.decode(audio))
    return OutputFacts(frames, duration, samples)


def _verify(index: VideoIndex, audio: _Audio | None, facts: OutputFacts,
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


def reverse_file(job: ReverseJob, progress: Progress) -> ReverseStats:
    """Write ``job.output`` playing ``job.source`` backwards, verify it, and say what was done."""
    try:
        index = index_video(job.source)
    except av.error.FFmpegError as error:
        raise ReversalFailed(f"FFmpeg cannot read the video ({error.strerror})") from None
    start_s = index.seconds(index.pts[0])
    span_s = index.seconds(index.end_pts - index.pts[0])
    audio = decode_audio_to_pcm(job.source, Path(job.temp_dir) / "audio.f32", start_s, span_s)
    reader = _VideoReader(job.source, index)
    frames_per_piece = max(1, job.frame_budget_bytes // reader.converter.frame_bytes)
    pieces = plan_pieces(index, frames_per_piece)
    rate = reader.stream.average_rate or reader.stream.base_rate
    output = _Output(job, reader, audio, rate)
    done = 0
    try:
        for piece in reversed(pieces):
            frames = reader.read(piece)
            for position in range(piece.stop - 1, piece.first - 1, -1):
                frame = frames.pop()
                # A true time mirror: frame i shows from end - t(i+1), so VFR stays VFR.
                frame.pts = index.end_pts - index.next_pts(position)
                frame.time_base = index.time_base
                frame.pict_type = PictureType.NONE  # else x264 forces the input's keyframes
                output.encode_video(frame)
            done += piece.stop - piece.first
            output.encode_audio_until(index.seconds(index.end_pts - index.pts[piece.first]))
            progress(done, index.frames)
        output.close()
    finally:
        reader.close()
    audio_frame = 1024 if job.encoder.audio_codec not in ("pcm_s16le", "pcm_f32le") else 0
    facts = measure_output(job.output)
    _verify(index, audio, facts, audio_frame)
    return ReverseStats(
        frames=index.frames,
        pieces=len(pieces),
        frames_per_piece=frames_per_piece,
        frames_decoded=reader.decoded,
        video_duration_s=span_s,
        audio_samples=audio.samples if audio else 0,
        output_frames=facts.frames,
        output_video_duration_s=facts.video_duration_s,
        output_audio_samples=facts.audio_samples,
        worker_peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    )
