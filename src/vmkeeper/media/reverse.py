"""Reverse a video in flat memory with PyAV: one process, one decoder, one long-lived encoder.

Why this shape (docs/media.md, shared notes on video reversal): FFmpeg's ``reverse`` filter keeps
every decoded frame (3.3 GiB for ~35 s of 1080p30: the June 2026 OOM). Here the video is cut into
pieces of whole GOPs (merged while they fit the memory budget, never split); pieces are decoded
from the end, each from its own keyframe, their converted frames written to an unnamed spool file
and read back newest-first into a single encoder. The worker holds about one decoded frame; the
spool's page cache is capped by the budget. No process start per piece, no second process
holding a second copy of FFmpeg, and each frame decoded once.

Audio is decoded forward once to raw PCM in a temporary file (constant memory), trimmed or padded
to the video's span, then read backwards in chunks and encoded once: encoding per piece adds AAC
priming at every join (the 0.7 s per 30 s drift).

Runs inside the worker process (``media/worker.py``) so the parent can kill it on the runbook's
FFMPEG_REVERSE_TIMEOUT_MS; nothing here prints.
"""

from __future__ import annotations

import array
import bisect
import contextlib
import itertools
import os
import queue
import resource
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import av.filter

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
        gaps = sorted(b - a for a, b in itertools.pairwise(pts)) or [int(1 / (30 * time_base)) or 1]
        last_duration = gaps[len(gaps) // 2]
    keys.sort()
    positions = [bisect.bisect_left(pts, key_pts) for key_pts, _ in keys]
    seeks = [seek for _, seek in keys]
    if positions[0] != 0:  # open-GOP leading frames before the first keyframe belong to it
        positions[0] = 0
    return VideoIndex(pts, positions, seeks, pts[-1] + last_duration, time_base)


def plan_pieces(index: VideoIndex, frames_per_piece: int) -> list[Piece]:
    """Whole GOPs, merged while they fit ``frames_per_piece``; a bigger GOP is a piece alone.

    A piece is never cut inside a GOP: its frames go to a spool file, not RAM, so a long GOP
    costs disk (and page cache beyond the budget is pushed out), never a re-decode from the
    keyframe for each part.
    """
    bounds = [*index.keyframe_positions, index.frames]
    pieces: list[Piece] = []
    current: Piece | None = None
    for gop, (first, stop) in enumerate(itertools.pairwise(bounds)):
        if stop <= first:
            continue
        if current is not None and stop - current.first <= frames_per_piece:
            current = Piece(current.first, stop, current.gop)
            continue
        if current is not None:
            pieces.append(current)
        current = Piece(first, stop, gop)
    if current is not None:
        pieces.append(current)
    return pieces


class _Converter:
    """Rotation, even size and yuv420p, explicit and identical for every piece."""

    def __init__(self, first: Any, time_base: Fraction) -> None:
        self.rotation = round(-(first.rotation or 0)) % 360  # clockwise, as autorotate
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

    def read(self, piece: Piece, sink: Callable[[Any], None]) -> None:
        """Hand ``sink`` the piece's frames, converted, in presentation order; exactly
        stop - first of them, one at a time (the caller spools them: nothing is kept here)."""
        pts = self.index.pts
        start = pts[piece.first]
        stop = pts[piece.stop] if piece.stop < len(pts) else None
        # Seek to the piece's keyframe; if the demuxer lands later than that (an index that
        # disagrees with the packets), fall back one keyframe at a time. Nothing has reached
        # the sink when that is detected: the first decoded frame is already past the start.
        for gop in range(piece.gop, -1, -1):
            _seek(self.container, self.stream, self.index.keyframe_seek[gop])
            kept = 0
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
                sink(self.converter.convert(frame))
                kept += 1
            if landed_late:
                continue
            if kept != piece.stop - piece.first:
                raise ReversalFailed(
                    f"frames {piece.first}-{piece.stop - 1} decoded as {kept} frames, "
                    f"expected {piece.stop - piece.first}: the file is damaged"
                )
            return
        raise ReversalFailed(f"no keyframe before frame {piece.first} could be decoded")


_TMPFS = {"tmpfs", "ramfs"}
_ADVISE_STEP = 8 * 1024 * 1024  # push spooled pages out in 8 MiB steps, not per frame
_READ_AHEAD_FRAMES = 4  # frames fetched ahead from disk when a piece was over its cache share


def filesystem_type(path: str) -> str:
    """The type of the filesystem holding ``path`` (longest mount point in mountinfo)."""
    target = os.path.realpath(path)
    best, kind = "", ""
    try:
        with open("/proc/self/mountinfo", encoding="utf-8", errors="replace") as mounts:
            for line in mounts:
                fields = line.split()
                if " - " not in line or len(fields) < 5:
                    continue
                point = fields[4].replace("\\040", " ")
                inside = target == point or target.startswith(point.rstrip("/") + "/")
                if inside and len(point) >= len(best):
                    best, kind = point, line.split(" - ", 1)[1].split()[0]
    except OSError:
        return ""
    return kind


def spool_directory(temp_dir: str, output: str) -> str:
    """Where a piece's frames are spooled: the private temp dir, unless that is RAM.

    A spool on tmpfs is shared memory: counted like the frames it replaces and not
    reclaimable without swap. The output's directory is on the disk DST goes to.
    """
    if filesystem_type(temp_dir) in _TMPFS:
        return os.path.dirname(os.path.abspath(output)) or "."
    return temp_dir


class _Spool:
    """One piece's converted yuv420p frames in an unnamed file: written forward, read back
    newest first, the file truncated behind each frame read.

    Why a file and not a list: a GOP of 1080p is ~190 MiB of decoded frames, and anonymous
    memory cannot be reclaimed on a VM without swap; page cache can. The worker's own memory
    then holds about one frame. ``cache_bytes`` caps the page cache a piece may hold: pages
    older than that are handed to writeback and dropped (POSIX_FADV_DONTNEED) as the piece is
    written, and truncating from the end as frames are read back drops pages without writing
    them out at all — a piece that fits the cap never touches the disk.
    """

    def __init__(self, directory: str, width: int, height: int, cache_bytes: int) -> None:
        self.width, self.height = width, height
        self.cache_bytes = max(cache_bytes, 0)
        # (plane width in bytes, rows) of yuv420p, stored tightly: no line padding on disk.
        self.planes = [(width, height), (width // 2, height // 2), (width // 2, height // 2)]
        self.frame_bytes = sum(w * h for w, h in self.planes)
        try:
            # O_TMPFILE: no name ever exists, and the kernel frees it if the worker is killed.
            self.fd = os.open(directory, os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
        except (OSError, AttributeError):
            handle, name = tempfile.mkstemp(prefix=".vmkeeper-spool-", dir=directory)
            os.unlink(name)
            self.fd = handle
        self.count = 0
        self.advised = 0

    def close(self) -> None:
        os.close(self.fd)

    def write(self, frame: Any) -> None:
        buffers: list[Any] = []
        for plane, (width, rows) in zip(frame.planes, self.planes, strict=False):
            view = memoryview(plane)
            if plane.line_size == width:
                buffers.append(view[: width * rows])
            else:
                # Padded lines (odd or rotated sizes): pack the rows into one buffer; a vector
                # entry per row would pass IOV_MAX (1024) at 1080 rows.
                buffers.append(b"".join(view[row * plane.line_size: row * plane.line_size + width]
                                        for row in range(rows)))
        offset = self.count * self.frame_bytes
        if not self.count:
            self.advised = 0  # a new piece: nothing of it has been pushed out yet
        if os.pwritev(self.fd, buffers, offset) != self.frame_bytes:
            raise ReversalFailed("the frame spool could not be written (disk full?)")
        self.count += 1
        end = offset + self.frame_bytes
        if end > self.cache_bytes and end - self.advised >= _ADVISE_STEP:
            # Dirty pages start writeback here and are dropped by a later call once clean.
            os.posix_fadvise(self.fd, 0, end - self.cache_bytes, os.POSIX_FADV_DONTNEED)
            self.advised = end

    def pop(self) -> Any:
        """The newest frame still in the spool, as a new frame the encoder may keep."""
        self.count -= 1
        offset = self.count * self.frame_bytes
        frame = av.VideoFrame(self.width, self.height, "yuv420p")
        pairs = list(zip(frame.planes, self.planes, strict=False))
        if all(plane.line_size == width for plane, (width, _) in pairs):
            targets = [memoryview(plane)[: w * h] for plane, (w, h) in pairs]
            got = os.preadv(self.fd, targets, offset)
        else:
            data = os.pread(self.fd, self.frame_bytes, offset)
            got, at = len(data), 0
            for plane, (width, rows) in zip(frame.planes, self.planes, strict=False):
                view = memoryview(plane)
                for row in range(rows):
                    view[row * plane.line_size: row * plane.line_size + width] = \
                        data[at: at + width]
                    at += width
        if got != self.frame_bytes:
            raise ReversalFailed("the frame spool was cut short")
        os.ftruncate(self.fd, offset)  # drops this frame's pages, never written back
        if offset < self.advised - self.cache_bytes:
            # This part was pushed out of the cache: the kernel's readahead does not follow a
            # file read backwards, so ask for the next frames (older, lower offsets) now and
            # let the disk work while this one is encoded.
            ahead = _READ_AHEAD_FRAMES * self.frame_bytes
            os.posix_fadvise(self.fd, max(0, offset - ahead), min(ahead, offset),
                             os.POSIX_FADV_WILLNEED)
        return frame


class _Stopped(Exception):
    """The encoding side gave up: the decoding thread stops at its next frame."""


@contextlib.contextmanager
def spooled_pieces(reader: _VideoReader, pieces: list[Piece],
                   spools: list[_Spool]) -> Iterator[Iterator[tuple[Piece, _Spool]]]:
    """Pieces from the last, each fully spooled, decoded in a thread one piece ahead.

    Why a thread: FFmpeg's own CLI (7 and later) runs demuxing, decoding and encoding in
    threads of their own even with ``-threads 1``, so the forward transcode the reversal is
    measured by overlaps its decoder with x264. Decoding piece k-1 into the second spool while
    piece k is encoded does the same (PyAV releases the GIL in avcodec calls); each codec is
    still single-threaded, and the extra memory is a second spool's page cache, not frames.
    """
    free: queue.Queue[_Spool] = queue.Queue()
    for spool in spools:
        free.put(spool)
    ready: queue.Queue[tuple[Piece, _Spool] | BaseException | None] = queue.Queue()
    stop = threading.Event()

    def produce() -> None:
        try:
            for piece in reversed(pieces):
                spool = free.get()
                if stop.is_set():
                    return

                def sink(frame: Any, spool: _Spool = spool) -> None:
                    if stop.is_set():
                        raise _Stopped
                    spool.write(frame)

                reader.read(piece, sink)
                ready.put((piece, spool))
            ready.put(None)
        except _Stopped:
            return
        except BaseException as error:  # noqa: BLE001 - handed to the encoding side, raised there
            ready.put(error)

    def consume() -> Iterator[tuple[Piece, _Spool]]:
        while True:
            item = ready.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
            free.put(item[1])  # drained by the caller: the decoder may refill it

    thread = threading.Thread(target=produce, name="vmkeeper-decode", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        for spool in spools:
            free.put(spool)  # wakes the thread if it waits for a spool
        thread.join()


def check_spool_space(directory: str, piece_bytes: int) -> None:
    """Refuse before decoding anything if the biggest piece's spool cannot fit."""
    stats = os.statvfs(directory)
    free = stats.f_bavail * stats.f_frsize
    margin = 16 * 1024 * 1024
    if piece_bytes + margin > free:
        raise ReversalFailed(
            f"the frame spool needs {piece_bytes / 2**20:,.0f} MiB in {directory} for the "
            f"longest GOP but only {free / 2**20:,.0f} MiB is free; free some disk space "
            "(or point TMPDIR at a bigger disk)"
        )


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
    converter = reader.converter
    frames_per_piece = max(1, job.frame_budget_bytes // converter.frame_bytes)
    pieces = plan_pieces(index, frames_per_piece)
    directory = spool_directory(job.temp_dir, job.output)
    # Two spools (one filling, one draining): room for the two longest pieces, and half the
    # page-cache budget each, so the budget still caps the cache of everything spooled.
    longest = sorted((p.stop - p.first for p in pieces), reverse=True)[:2]
    check_spool_space(directory, sum(longest) * converter.frame_bytes)
    rate = reader.stream.average_rate or reader.stream.base_rate
    output = _Output(job, reader, audio, rate)
    spools = [_Spool(directory, converter.width, converter.height, job.frame_budget_bytes // 2)
              for _ in range(2)]
    done = 0
    try:
        with spooled_pieces(reader, pieces, spools) as ready:
            for piece, spool in ready:
                for position in range(piece.stop - 1, piece.first - 1, -1):
                    frame = spool.pop()
                    # A true time mirror: frame i shows from end - t(i+1), so VFR stays VFR.
                    frame.pts = index.end_pts - index.next_pts(position)
                    frame.time_base = index.time_base
                    output.encode_video(frame)
                    del frame  # x264 copied it: free the buffer before the next read
                done += piece.stop - piece.first
                output.encode_audio_until(
                    index.seconds(index.end_pts - index.pts[piece.first]))
                progress(done, index.frames)
        output.close()
    except OSError as error:
        raise ReversalFailed(f"the frame spool in {directory} failed: {error.strerror}") from None
    finally:
        for spool in spools:
            spool.close()
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
