"""Reverse a video in flat memory with PyAV: one process, one decoder, one long-lived encoder.

Why this shape (docs/media.md, shared notes on video reversal): FFmpeg's ``reverse`` filter keeps
every decoded frame (3.3 GiB for ~35 s of 1080p30: the June 2026 OOM). Here the video is cut into
pieces of whole GOPs (merged while they fit the memory budget, never split); pieces are decoded
from the end, each from its own keyframe, their converted frames written to an unnamed spool file
and read back newest-first into a single encoder. The worker holds about one decoded frame; the
spool's page cache is capped by the budget. No process start per piece, no second process
holding a second copy of FFmpeg, and each frame decoded once.

Audio is decoded forward once to raw PCM in a temporary file (constant memory), trimmed or padded
to the video's span, then read backwards in chunks and encoded once (``media/pcm.py``).

The parts: ``frames.py`` (index, pieces, decoding, conversion), ``spool.py``, ``pcm.py``,
``output.py`` (encoders, muxer, the check of the output); this module runs them. Runs inside
the worker process (``media/worker.py``) so the parent can kill it on the runbook's
FFMPEG_REVERSE_TIMEOUT_MS; nothing here prints.
"""

from __future__ import annotations

import contextlib
import queue
import resource
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import av

from vmkeeper.media.frames import (
    Piece,
    ReversalFailed,
    VideoIndex,
    VideoReader,
    index_video,
    plan_pieces,
)
from vmkeeper.media.job import ReverseJob, ReverseStats
from vmkeeper.media.output import Output, measure_output, verify
from vmkeeper.media.pcm import decode_audio_to_pcm
from vmkeeper.media.spool import CacheShare, Spool, check_spool_space, spool_directory

__all__ = ["Opened", "ReversalFailed", "open_source", "reverse_file"]

Progress = Callable[[int, int], None]
Ready = tuple[Piece, Spool, list[Any]]  # a spooled piece and its audio packets
# What the encoding thread gets: a video frame to encode; or (frame None) at a piece's start its
# audio packets to mux, at its end the number of frames it had.
Item = tuple[Any, list[Any], int]
_FRAMES_READ_AHEAD = 2  # frames read back ahead of x264: one being encoded, one ready
_FILL_THREADS = 2  # frame threads of the fill (spooled_pieces): the other core idles meanwhile
# The fill decodes the next piece too when that one has over this many times the first's frames
# (a video's short last GOP): spooled_pieces says why.
_FILL_NEXT_OVER = 4


class _Stopped(Exception):
    """The consuming side gave up: the producing thread stops at its next step."""


_END = object()  # the producer is done
Take = Callable[[], Any]  # a free resource (a spool, a frame) for the producer; waits for one


@contextlib.contextmanager
def run_ahead(name: str, resources: list[Any],
              produce: Callable[[Take, Callable[[Any], None], threading.Event], None],
              released: Callable[[Any], Any]) -> Iterator[Iterator[Any]]:
    """Items made by ``produce(take, put, stop)`` in a thread of its own, ahead of the caller,
    each from one of ``resources`` taken with ``take()``; once the caller is done with an item
    (it asks for the next), ``released(item)`` (a resource, or None) is free again.

    The one producer/consumer shape of the reversal (the decoding thread filling spools, the
    reading thread filling frames). An exception in the thread is raised at the caller; when
    the caller leaves, ``stop`` is set, a producer waiting in ``take()`` or checking ``stop``
    stops, and the thread is joined.
    """
    free: queue.Queue[Any] = queue.Queue()
    for each in resources:
        free.put(each)
    out: queue.Queue[Any] = queue.Queue()
    stop = threading.Event()

    def take() -> Any:
        got = free.get()
        if stop.is_set():
            raise _Stopped
        return got

    def run() -> None:
        try:
            produce(take, out.put, stop)
            out.put(_END)
        except _Stopped:
            return
        except BaseException as error:  # noqa: BLE001 - handed to the caller, raised there
            out.put(error)

    def consume() -> Iterator[Any]:
        while True:
            item = out.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
            again = released(item)
            if again is not None:
                free.put(again)  # the caller is done with it: the producer may refill it

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        free.put(None)  # wakes the producer if it waits for a resource
        thread.join()


def spooled_pieces(fill: VideoReader, rest: Callable[[], VideoReader], pieces: list[Piece],
                   spools: list[Spool], after: Callable[[Piece], list[Any]]
                   ) -> contextlib.AbstractContextManager[Iterator[Ready]]:
    """Pieces from the last, each fully spooled, decoded in a thread one piece ahead; with each,
    what ``after(piece)`` returned in that thread once the piece was spooled (its audio).

    Why a thread: FFmpeg's own CLI (7 and later) runs demuxing, decoding and each encoder in
    threads of their own even with ``-threads 1``, so the forward transcode the reversal is
    measured by overlaps its decoder and its audio encoder with x264. Decoding piece k-1 into
    the second spool, and encoding its audio, while piece k's video is encoded does the same
    (PyAV releases the GIL in avcodec calls); each codec is still single-threaded, and the
    extra memory is a second spool's page cache, not frames.

    The first piece (the video's last) is decoded by ``fill``, then closed: nothing can be
    encoded before that piece is whole (its last frame is the output's first), and FFmpeg's
    forward transcode has no such wait, so while the encoder idles ``fill`` may use frame
    threads; at no time do more threads run than while encoding (this one and x264's). The
    other pieces are read by ``rest()``, a one-thread reader opened here once the fill is
    done, while x264 encodes it (a sub-second clip is one piece: it never opens one).

    A video's last GOP is often short (what was left), the one before it whole: 7 frames after
    119 at 720p60. Read by one thread while x264 encodes those 7 (0.1 s), that 119-frame piece
    kept x264 idle 0.74 s (the second piece cannot start before it is whole either). So when
    the second piece has over ``_FILL_NEXT_OVER`` times the first's frames, the fill decodes it
    too, with its frame threads and x264 still idle, before either is handed on: x264 then
    waits for both at two threads' pace (~0.4 s there), never for one thread alone. Why 4: one
    thread decodes and spools a frame in about half x264's time for it (measured: 6.2 vs 13.3
    ms at 720p60, 6.3 vs 18.5 on Game of Life 1080p, 24 vs 44 on the 1080p zoom). A second
    piece of n2 frames after n1 then keeps x264 waiting n2/2 - n1 frame-encodes; filled at two
    threads' pace, n2/4. The two are equal at n2 = 4 n1, and the fill is the shorter wait past
    it (below it, the fill would add to the wait what one thread hides behind x264).
    """
    def produce(take: Take, put: Callable[[Ready], None], stop: threading.Event) -> None:
        def spooled(reader: VideoReader, piece: Piece) -> Spool:
            spool: Spool = take()

            def sink(frame: Any) -> None:
                if stop.is_set():
                    raise _Stopped
                spool.write(frame)

            reader.read(piece, sink)
            return spool

        order = list(reversed(pieces))
        short_tail = len(order) > 1 and order[1].frames > _FILL_NEXT_OVER * order[0].frames
        filled = 2 if short_tail else 1
        first = [(piece, spooled(fill, piece)) for piece in order[:filled]]
        fill.close()  # its threads' frames go before x264's come
        for piece, spool in first:
            put((piece, spool, after(piece)))
        for piece in order[filled:]:
            put((piece, spooled(rest(), piece), after(piece)))

    return run_ahead("vmkeeper-decode", list(spools), produce, lambda ready: ready[1])


def read_back(ready: Iterator[Ready], index: VideoIndex,
              new_frame: Callable[[], Any]) -> contextlib.AbstractContextManager[Iterator[Item]]:
    """The spooled frames newest first, stamped with their mirrored time, read back by a thread
    of their own while x264 encodes the frame before.

    Why a third thread: reading a frame back (a copy out of the page cache and the truncation
    behind it) was ~3.5 % of the thread that runs x264, the thread the reversal's wall time is
    (docs/media.md); here it overlaps the encoding, and the thread running x264 does nothing
    but encode and mux. Two frames, reused for the whole reversal, one being encoded, one being
    filled (libx264 copies its input: a frame is free again once ``encode`` returned, i.e.
    when the caller asks for the next item).
    """
    end = index.end_pts

    def produce(take: Take, put: Callable[[Item], None], _stop: threading.Event) -> None:
        for piece, spool, audio_packets in ready:
            put((None, audio_packets, 0))  # the piece's sound first (Output.audio_until)
            for position in range(piece.stop - 1, piece.first - 1, -1):
                frame = take()
                spool.pop(frame)
                # A true time mirror: frame i shows from end - t(i+1), so VFR stays VFR.
                frame.pts = end - index.next_pts(position)
                frame.time_base = index.time_base
                put((frame, [], 0))
            put((None, [], piece.frames))

    frames = [new_frame() for _ in range(_FRAMES_READ_AHEAD)]
    return run_ahead("vmkeeper-read-back", frames, produce, lambda item: item[0])


class Opened(NamedTuple):
    """A source opened before its job came (``worker serve``, while the CLI prepares the job):
    a container for the video, one for the sound, neither read yet."""

    video: Any
    sound: Any

    def close(self) -> None:
        self.video.close()
        self.sound.close()


def _open_video(path: str) -> Any:
    try:
        return av.open(path)
    except av.error.FFmpegError as error:
        raise ReversalFailed(f"FFmpeg cannot read the video ({error.strerror})") from None


def open_source(path: str) -> Opened:
    """``path`` opened for :func:`reverse_file` (an open is ~14 ms at 1080p on this VM kind:
    FFmpeg decodes frames to find the streams' parameters). ReversalFailed or FFmpegError."""
    video = _open_video(path)
    try:
        return Opened(video, av.open(path))
    except BaseException:
        video.close()
        raise


def reverse_file(job: ReverseJob, progress: Progress, opened: Opened | None = None
                 ) -> ReverseStats:
    """Write ``job.output`` playing ``job.source`` backwards, verify it, and say what was done.

    ``opened``: ``job.source`` already opened (:func:`open_source`), closed here."""
    # One open of the source for the index and the fill, one for the sound.
    source = opened.video if opened is not None else _open_video(job.source)
    sound = opened.sound if opened is not None else None
    readers: list[VideoReader] = []
    try:
        try:
            index = index_video(source)
        except av.error.FFmpegError as error:
            raise ReversalFailed(f"FFmpeg cannot read the video ({error.strerror})") from None
        readers.append(VideoReader(source, index, threads=_FILL_THREADS, rotation=job.rotation))
        return _reverse(job, index, readers, progress, sound)
    finally:
        source.close()
        if sound is not None:  # decode_audio_to_pcm closed it once read (close is idempotent)
            sound.close()
        for reader in readers:
            reader.close()


def _reverse(job: ReverseJob, index: VideoIndex, readers: list[VideoReader],
             progress: Progress, sound: Any) -> ReverseStats:
    start_s = index.seconds(index.pts[0])
    span_s = index.seconds(index.end_pts - index.pts[0])
    audio = decode_audio_to_pcm(sound if sound is not None else av.open(job.source),
                                Path(job.temp_dir) / "audio.f32", start_s, span_s)
    fill = readers[0]
    converter = fill.converter
    frames_per_piece = max(1, job.frame_budget_bytes // converter.frame_bytes)
    pieces = plan_pieces(index, frames_per_piece)
    directory = spool_directory(job.temp_dir, job.output)
    # Two spools (one filling, one draining): room on disk for the two longest pieces; the
    # page-cache budget is theirs together (spool.CacheShare), so it caps everything spooled.
    longest = sorted((p.frames for p in pieces), reverse=True)[:2]
    check_spool_space(directory, sum(longest) * converter.frame_bytes)
    rate = fill.stream.average_rate or fill.stream.base_rate
    output = Output(job, fill, audio, rate)
    share = CacheShare(job.frame_budget_bytes)
    spools = [Spool(directory, converter.width, converter.height, share) for _ in range(2)]
    done = 0
    end = index.end_pts

    def audio_of(piece: Piece) -> list[Any]:  # in the decoding thread
        return output.audio_until(index.seconds(end - index.pts[piece.first]))

    def rest() -> VideoReader:  # in the decoding thread
        if len(readers) == 1:
            readers.append(VideoReader(av.open(job.source), index, converter=converter))
        return readers[1]

    try:
        with (spooled_pieces(fill, rest, pieces, spools, audio_of) as ready,
              read_back(ready, index, spools[0].new_frame) as items):
            for frame, audio_packets, frames in items:
                if frame is not None:
                    output.encode_video(frame)
                    continue
                output.mux(audio_packets)
                done += frames
                progress(done, index.frames)
        output.close()
    except OSError as error:
        raise ReversalFailed(f"the frame spool in {directory} failed: {error.strerror}") from None
    finally:
        for spool in spools:
            spool.close()
    audio_frame = 1024 if job.encoder.audio_codec not in ("pcm_s16le", "pcm_f32le") else 0
    facts = measure_output(job.output)
    verify(index, audio, facts, audio_frame)
    return ReverseStats(
        frames=index.frames,
        pieces=len(pieces),
        frames_per_piece=frames_per_piece,
        frames_decoded=sum(reader.decoded for reader in readers),
        video_duration_s=span_s,
        audio_samples=audio.samples if audio else 0,
        output_frames=facts.frames,
        output_video_duration_s=facts.video_duration_s,
        output_audio_samples=facts.audio_samples,
        worker_peak_rss_bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    )
