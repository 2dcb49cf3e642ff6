"""`media reverse`: check the input, reverse it in a killable worker, put DST in place verified.

The runbook's guardrails, in order: input limits before any FFmpeg starts; the reversal in a
child process (``python -P …/media/worker.py``) run through :func:`vmkeeper.proc.start`, so
FFMPEG_REVERSE_TIMEOUT_MS kills its whole process group; a private temporary directory (PCM,
frame spool) removed whatever happens; DST written under a temporary name beside it and renamed
only once the worker has checked frame count, duration and audio length; one JSON log record per
reversal.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import structlog

from vmkeeper import proc
from vmkeeper.adapters import ffmpeg
from vmkeeper.adapters.ffmpeg import MediaInfo
from vmkeeper.errors import CommandNotFound, MediaError, MediaRejected, UsageError, VmkeeperError
from vmkeeper.media.job import CONTAINERS, EncoderSpec, ReverseJob, ReverseStats
from vmkeeper.media.limits import MediaLimits, check_file, check_media
from vmkeeper.media.probe import probe_media
from vmkeeper.settings import MediaSettings

Progress = Callable[[str], None]

_POLL_S = 0.2
# PyAV's decoder and x264 run with one thread each, but glibc would still give every thread
# that ever mallocs its own arena (64 MiB of address space, pages kept after free): two arenas
# bound that, at no cost for a single-threaded worker.
_WORKER_ENV = {"MALLOC_ARENA_MAX": "2"}


@dataclass(frozen=True)
class ReverseResult:
    ok: bool
    output: str | None
    input: MediaInfo | None
    seconds: float
    error: str | None
    rejected: bool = False  # the input was refused by a check, nothing was started
    stats: ReverseStats | None = None
    output_size_bytes: int | None = None
    peak_memory_bytes: int | None = None  # parent + worker, sampled, and the worker's own peak


def _json_log() -> Any:
    # One JSON line per reversal on stderr, where PM2 and journald collect it; stdout stays the
    # command's own (`--json` prints one object there and nothing else).
    return structlog.wrap_logger(
        structlog.PrintLogger(sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.JSONRenderer()],
    )


def container_for(destination: Path) -> str:
    try:
        return CONTAINERS[destination.suffix.lower()]
    except KeyError:
        raise UsageError(
            f"{destination} must end in one of {', '.join(sorted(CONTAINERS))} "
            "(the output is H.264 + AAC in MP4 unless MOV or Matroska is asked for)."
        ) from None


def _rss(pid: int) -> int:
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except psutil.Error:
        return 0


class _WorkerRun:
    """Read the worker's JSON lines until it answers, the deadline passes, or it dies."""

    def __init__(self, running: proc.Running, progress: Progress, deadline: float) -> None:
        self.running = running
        self.progress = progress
        self.deadline = deadline
        self.peak_tree = 0
        self.answer: dict[str, Any] | None = None

    def follow(self) -> None:
        stream = self.running.stdout
        assert stream is not None
        selector = selectors.DefaultSelector()
        selector.register(stream, selectors.EVENT_READ)
        buffer = b""
        own = os.getpid()
        while True:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            self.peak_tree = max(self.peak_tree, _rss(own) + _rss(self.running.pid))
            if not selector.select(timeout=min(_POLL_S, left)):
                continue
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                self._handle(line)

    def _handle(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except json.JSONDecodeError:
            return
        if message.get("type") == "progress":
            done, total = message["done"], message["total"]
            self.progress(f"reversed {done} of {total} frames ({100 * done // max(total, 1)}%)")
        elif message.get("type") in ("result", "error"):
            self.answer = message


def _run_worker(job: ReverseJob, media: MediaSettings, progress: Progress,
                deadline: float, stderr_path: Path) -> tuple[ReverseStats, int]:
    argv = ffmpeg.build_worker_argv(job.to_json())
    timeout = max(deadline - time.monotonic(), 0.001)
    with stderr_path.open("wb") as stderr, \
            proc.start(argv, timeout=timeout, env=_WORKER_ENV, stdout=proc.PIPE,
                       stderr=stderr) as running:
        follower = _WorkerRun(running, progress, deadline)
        try:
            follower.follow()
            code = running.wait()
        except (TimeoutError, VmkeeperError):
            running.kill()
            raise MediaError(
                f"Reversing {job.source} took longer than {media.reverse_timeout_ms} ms "
                "(media.reverse_timeout_ms, FFMPEG_REVERSE_TIMEOUT_MS) and was stopped; "
                "nothing was written."
            ) from None
    answer = follower.answer or {}
    if code != 0 or answer.get("type") != "result":
        reason = answer.get("message") or proc.tail(
            stderr_path.read_text(errors="replace"), 5) or f"the worker exited with code {code}"
        raise MediaError(f"Reversing {job.source} failed: {reason}")
    return ReverseStats.from_dict(answer), follower.peak_tree


def _temporary_name(destination: Path) -> Path:
    # Beside DST so the final rename stays on one filesystem (atomic); hidden, with DST's suffix.
    return destination.with_name(f".{destination.stem}.partial-{os.getpid()}{destination.suffix}")


def reverse(
    media: MediaSettings,
    source: Path,
    destination: Path,
    progress: Progress,
    deadline: float | None = None,
    *,
    log: Any = None,
) -> ReverseResult:
    """Write ``destination`` playing ``source`` backwards, sound included, in bounded memory.

    ``deadline`` is a :func:`time.monotonic` instant (default: now + reverse_timeout_ms). A
    refused input, a failure or a timeout is a result with ``ok`` false and ``error`` set; the
    destination is then untouched. Raises UsageError for a destination of unknown type.
    """
    started = time.monotonic()
    deadline = deadline or started + media.reverse_timeout_ms / 1000
    log = log or _json_log()
    container = container_for(destination)
    info: MediaInfo | None = None
    record: dict[str, Any] = {"source": str(source), "destination": str(destination)}
    try:
        limits = MediaLimits.from_settings(media)
        record["input_size_bytes"] = check_file(source, limits)
        progress(f"probing {source}")
        info = probe_media(media, source, timeout_s=max(deadline - time.monotonic(), 0.001))
        record["input"] = _jsonable(info)
        check_media(info, limits)
        stats, peak_tree = _reverse_checked(media, source, destination, container, progress,
                                            deadline)
    except (MediaRejected, MediaError, CommandNotFound) as error:
        seconds = time.monotonic() - started
        rejected = isinstance(error, MediaRejected)
        log.warning("media.reverse", ok=False, rejected=rejected, error=str(error),
                    seconds=round(seconds, 3), **record)
        return ReverseResult(False, None, info, seconds, str(error), rejected=rejected)
    seconds = time.monotonic() - started
    size = destination.stat().st_size
    peak = max(peak_tree, stats.worker_peak_rss_bytes)
    log.info("media.reverse", ok=True, seconds=round(seconds, 3), output_size_bytes=size,
             pieces=stats.pieces, frames=stats.frames, frames_decoded=stats.frames_decoded,
             audio_samples=stats.audio_samples, peak_memory_bytes=peak,
             worker_peak_rss_bytes=stats.worker_peak_rss_bytes, **record)
    return ReverseResult(True, str(destination), info, seconds, None, stats=stats,
                         output_size_bytes=size, peak_memory_bytes=peak)


def _reverse_checked(media: MediaSettings, source: Path, destination: Path, container: str,
                     progress: Progress, deadline: float) -> tuple[ReverseStats, int]:
    temp_dir = Path(tempfile.mkdtemp(prefix="vmkeeper-reverse-"))
    partial = _temporary_name(destination)
    job = ReverseJob(
        source=str(source.resolve()),
        output=str(partial),
        container=container,
        temp_dir=str(temp_dir),
        frame_budget_bytes=media.memory_budget_mb * 1024 * 1024,
        encoder=EncoderSpec(media.video_codec, media.preset, media.crf, media.audio_codec,
                            media.audio_bitrate),
    )
    try:
        destination.parent.mkdir(parents=True, exist_ok=True)
        progress(f"reversing {source} into {destination}")
        stats, peak_tree = _run_worker(job, media, progress, deadline, temp_dir / "worker.log")
        os.replace(partial, destination)
        return stats, peak_tree
    finally:
        partial.unlink(missing_ok=True)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _jsonable(info: MediaInfo) -> dict[str, Any]:
    from dataclasses import asdict

    return asdict(info)
