"""The video side of a reversal: the packet index, the pieces, decoding a piece, converting frames.

Imported by the reversal worker only (``media/reverse.py``): PyAV and the standard library.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Iterator
from fractions import Fraction
from typing import Any, NamedTuple

import av
import av.filter


class ReversalFailed(Exception):
    """The reversal could not be done or its output is not what was expected."""


class VideoIndex(NamedTuple):
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


class Piece(NamedTuple):
    first: int  # first frame (position in presentation order)
    stop: int  # one past the last frame
    gop: int  # index of the keyframe to decode from

    @property
    def frames(self) -> int:
        return self.stop - self.first


def single_thread(stream: Any) -> None:
    # The runbook's `-threads 1`: frame threads would hold a frame per thread, slice threads
    # fight the other apps on a 2-core VM.
    stream.thread_type = "NONE"
    stream.codec_context.thread_count = 1


def index_video(container: Any) -> VideoIndex:
    """The index of ``container``'s first video stream, demuxed to its end (no decoding)."""
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


class Shape(NamedTuple):
    """What a decoded frame is: its size, pixel format, and rotation (degrees clockwise)."""

    width: int
    height: int
    pix_fmt: str
    rotation: int

    @classmethod
    def of(cls, frame: Any) -> Shape:
        return cls(frame.width, frame.height, frame.format.name,
                   round(-(frame.rotation or 0)) % 360)  # clockwise, as autorotate

    def __str__(self) -> str:
        return f"{self.width}x{self.height} {self.pix_fmt}, rotated {self.rotation}°"


def _declared(stream: Any, rotation: int | None) -> Shape | None:
    """The frames' shape as the stream's parameters and the probe's rotation declare it (no
    decoding); None when one of them is unknown."""
    context = stream.codec_context
    if rotation is None or not context.width or not context.height or context.format is None:
        return None
    return Shape(context.width, context.height, context.format.name, rotation)


class Converter:
    """Rotation, even size and yuv420p, explicit and identical for every piece.

    An odd size is cropped to even (the right column, the bottom row: libx264 refuses odd
    4:2:0, and FFmpeg's own forward transcode fails on it): 853x479 comes out 852x478, never
    with a black border. A yuv420p frame of even size, not rotated, needs nothing: it passes
    through untouched, without a filter graph (no push/pull, no copy per frame).
    """

    def __init__(self, shape: Shape, time_base: Fraction) -> None:
        self.shape = shape
        self.rotation = shape.rotation
        steps: list[tuple[str, str]] = {
            90: [("transpose", "clock")],
            180: [("hflip", ""), ("vflip", "")],
            270: [("transpose", "cclock")],
        }.get(self.rotation, [])
        width, height = shape.width, shape.height
        if self.rotation in (90, 270):
            width, height = height, width
        self.width, self.height = width - width % 2, height - height % 2
        if (width, height) != (self.width, self.height):
            steps.append(("crop", f"{self.width}:{self.height}:0:0"))
        self.graph: Any = None
        if steps or shape.pix_fmt != "yuv420p":
            self.graph = self._graph(shape, time_base, [*steps, ("format", "yuv420p")])

    @staticmethod
    def _graph(shape: Shape, time_base: Fraction, steps: list[tuple[str, str]]) -> Any:
        graph = av.filter.Graph()
        node = graph.add_buffer(width=shape.width, height=shape.height,
                                format=av.VideoFormat(shape.pix_fmt),
                                time_base=time_base)
        for name, args in steps:
            nxt = graph.add(name, args) if args else graph.add(name)
            node.link_to(nxt)
            node = nxt
        sink = graph.add("buffersink")
        node.link_to(sink)
        graph.configure()
        return graph

    @property
    def frame_bytes(self) -> int:
        return int(self.width * self.height * 3 // 2)

    def convert(self, frame: Any) -> Any:
        if self.graph is None:
            return frame
        self.graph.push(frame)
        return self.graph.pull()


def _decoded(container: Any, stream: Any, keyframe_pts: int | None = None) -> Iterator[Any]:
    """Decoded frames in decoding order; from the first keyframe at or past ``keyframe_pts``.

    Why skip: a seek may land a GOP or more before the keyframe asked for (measured on an MP4
    with variable frame rate: 445 frames decoded for 250). Packets before it are skipped
    undecoded, so each frame is still decoded once.
    """
    started = keyframe_pts is None
    for packet in container.demux(stream):
        if not started:
            if not packet.is_keyframe or packet.pts is None or packet.pts < keyframe_pts:
                continue
            started = True
        yield from packet.decode()


def _seek(container: Any, stream: Any, timestamp: int) -> None:
    container.seek(timestamp, stream=stream, backward=True, any_frame=False)
    stream.codec_context.flush_buffers()


class VideoReader:
    """Decodes pieces of ``container`` (an open source, which it closes): one thread (the
    runbook's ``-threads 1``) unless ``threads`` asks for frame threads; ``converter``: one
    already made for this source, else one made for the shape the stream declares with the
    probe's ``rotation`` (each piece's first frame is checked against it), else for the shape
    of a frame decoded here (measured at 1080p: the first frame to encode ~8 ms later)."""

    def __init__(self, container: Any, index: VideoIndex, *, threads: int = 1,
                 converter: Converter | None = None, rotation: int | None = None) -> None:
        self.container = container
        self.stream = container.streams.video[0]
        if threads > 1:  # set before the decoder opens (at its first packet)
            self.stream.thread_type = "FRAME"
            self.stream.codec_context.thread_count = threads
        else:
            single_thread(self.stream)
        self.index = index
        self.decoded = 0
        if converter is None:
            shape = _declared(self.stream, rotation)
            if shape is None:
                # Any frame tells the size, format and rotation: the first keyframe's (the
                # index pass may have left the container at its end).
                _seek(container, self.stream, index.keyframe_seek[0])
                shape = Shape.of(next(_decoded(container, self.stream)))
            converter = Converter(shape, index.time_base)
        self.converter = converter

    def close(self) -> None:
        """Close the container (again: harmless) and free the decoder: closing alone keeps
        it, and its frames, as long as the stream object lives (~24 MiB at 1080p, measured)."""
        self.container.close()
        self.stream = None

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
            for frame in _decoded(self.container, self.stream, self.index.keyframe_seek[gop]):
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
                if not kept and Shape.of(frame) != self.converter.shape:
                    raise ReversalFailed(
                        f"frame {piece.first} is {Shape.of(frame)}, not "
                        f"{self.converter.shape} as the video stream declares: a size, pixel "
                        "format or rotation that changes cannot be reversed; re-encode the "
                        "video to one size first")
                sink(self.converter.convert(frame))
                kept += 1
            if landed_late:
                continue
            if kept != piece.frames:
                raise ReversalFailed(
                    f"frames {piece.first}-{piece.stop - 1} decoded as {kept} frames, "
                    f"expected {piece.frames}: the file is damaged"
                )
            return
        raise ReversalFailed(f"no keyframe before frame {piece.first} could be decoded")

