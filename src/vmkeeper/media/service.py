"""`media reverse`: check the input, then reverse it in a killable worker under a supervisor.

The runbook's guardrails, in order: input limits before any FFmpeg starts (:func:`prepare`,
here, with the settings and the probe); then :mod:`vmkeeper.media.supervisor` — the reversal in
a child process (``python -P …/media/worker.py``) in its own process group, killed whole when
FFMPEG_REVERSE_TIMEOUT_MS passes; a private temporary directory (PCM, frame spool) removed
whatever happens; DST written under a temporary name beside it and renamed only once the worker
has checked frame count, duration and audio length; one JSON log record per reversal.

The CLI ``exec``s the supervisor as a stdlib-only script once :func:`prepare` is done, so the
process that waits for the worker is small; :func:`reverse` (the job service, the tests) runs
the same :func:`vmkeeper.media.supervisor.supervise` in-process: one implementation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from vmkeeper.adapters.ffmpeg import MediaInfo
from vmkeeper.errors import CommandNotFound, MediaError, MediaRejected, UsageError
from vmkeeper.media import supervisor
from vmkeeper.media.job import CONTAINERS, EncoderSpec, ReverseStats, SupervisedReversal
from vmkeeper.media.limits import MediaLimits, check_file, check_media
from vmkeeper.media.probe import probe_media
from vmkeeper.settings import MediaSettings

Progress = Callable[[str], None]


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


def json_log() -> supervisor.JsonLog:
    # One JSON line per reversal on stderr, where PM2 and journald collect it; stdout stays the
    # command's own (`--json` prints one object there and nothing else). The same writer as the
    # supervisor script's, so the record is vmkeeper.logrecord's in every process.
    return supervisor.JsonLog()


def container_for(destination: Path) -> str:
    try:
        return CONTAINERS[destination.suffix.lower()]
    except KeyError:
        raise UsageError(
            f"{destination} must end in one of {', '.join(sorted(CONTAINERS))} "
            "(the output is H.264 + AAC in MP4 unless MOV or Matroska is asked for)."
        ) from None


def _temporary_name(destination: Path) -> Path:
    # Beside DST so the final rename stays on one filesystem (atomic); hidden, with DST's suffix.
    # The PID is the CLI's, which the supervisor keeps across exec.
    return destination.with_name(f".{destination.stem}.partial-{os.getpid()}{destination.suffix}")


def prepare(
    media: MediaSettings,
    source: Path,
    destination: Path,
    progress: Progress,
    deadline: float | None = None,
    *,
    log: Any = None,
    started: float | None = None,
) -> ReverseResult | tuple[SupervisedReversal, MediaInfo]:
    """Check ``source`` (size, probe, limits) and compute the job; nothing is started yet.

    Returns a refused or failed ReverseResult (logged), or the job for
    :func:`vmkeeper.media.supervisor.supervise` and the probed metadata. Raises UsageError for a destination of unknown
    type.
    """
    started = started or time.monotonic()
    deadline = deadline or started + media.reverse_timeout_ms / 1000
    container = container_for(destination)
    info: MediaInfo | None = None
    record: dict[str, Any] = {"source": str(source), "destination": str(destination)}
    try:
        limits = MediaLimits.from_settings(media)
        record["input_size_bytes"] = check_file(source, limits)
        progress(f"probing {source}")
        info = probe_media(media, source, timeout_s=max(deadline - time.monotonic(), 0.001))
        record["input"] = asdict(info)
        check_media(info, limits)
    except (MediaRejected, MediaError, CommandNotFound) as error:
        seconds = time.monotonic() - started
        rejected = isinstance(error, MediaRejected)
        (log or json_log()).warning("media.reverse", ok=False, rejected=rejected,
                                     error=str(error), seconds=round(seconds, 3), **record)
        return ReverseResult(False, None, info, seconds, str(error), rejected=rejected)
    plan = SupervisedReversal(
        source=str(source.resolve()),
        destination=str(destination),
        partial=str(_temporary_name(destination)),
        container=container,
        frame_budget_bytes=media.memory_budget_mb * 1024 * 1024,
        encoder=EncoderSpec(media.video_codec, media.preset, media.crf, media.audio_codec,
                            media.audio_bitrate),
        started=started,
        deadline=deadline,
        timeout_ms=media.reverse_timeout_ms,
        record=record,
        input=record["input"],
    )
    return plan, info


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
    log = log or json_log()
    prepared = prepare(media, source, destination, progress, deadline, log=log)
    if isinstance(prepared, ReverseResult):
        return prepared
    plan, info = prepared
    outcome = _run_worker(plan, progress, log)
    stats = outcome["stats"]
    return ReverseResult(
        outcome["ok"], outcome["output"], info, outcome["seconds"],
        outcome["error"], stats=ReverseStats.from_dict(stats) if stats else None,
        output_size_bytes=outcome["output_size_bytes"],
        peak_memory_bytes=outcome["peak_memory_bytes"])


def _run_worker(plan: SupervisedReversal, progress: Progress, log: Any) -> dict[str, Any]:
    """The supervisor in this process: start, follow, rename, clean up, log."""
    return supervisor.supervise(plan, progress, log)
