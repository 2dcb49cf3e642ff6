"""`media reverse`: check the input, then reverse it in a killable worker under a supervisor.

The runbook's guardrails, in order: input limits before any FFmpeg starts (:func:`prepare`,
here, with the settings and the probe); then :mod:`vmkeeper.media.supervisor` — the reversal in
a child process (``python -P -m vmkeeper.media.worker``) in its own process group, killed whole
when FFMPEG_REVERSE_TIMEOUT_MS passes; private temporary folders (PCM, frame spool, the partial
output) removed whatever happens; DST replaced only once the worker has checked frame count,
duration and audio length; one JSON log record per reversal when asked for.

The CLI ``exec``s the supervisor once :func:`prepare` is done, so the process that waits for the
worker is small; the job service starts the same supervisor as a child under the job's memory
limit; :func:`reverse` (the tests) runs :func:`vmkeeper.media.supervisor.supervise` in-process:
one implementation.
"""

from __future__ import annotations

import os
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from vmkeeper.adapters.ffmpeg import MediaInfo
from vmkeeper.errors import CommandNotFound, MediaError, MediaRejected, UsageError
from vmkeeper.media import supervisor
from vmkeeper.media.job import CONTAINERS, EncoderSpec, ReverseResult, SupervisedReversal
from vmkeeper.media.limits import MediaLimits, check_file, check_media
from vmkeeper.media.probe import probe_media
from vmkeeper.media.supervisor import Log
from vmkeeper.media.warm import WarmWorker
from vmkeeper.progress import Phase, Progress, ProgressEvent, silent
from vmkeeper.settings import MediaSettings

__all__ = ["ReverseResult", "check_destination", "container_for", "prepare", "reverse"]


def container_for(destination: Path) -> str:
    try:
        return CONTAINERS[destination.suffix.lower()]
    except KeyError:
        raise UsageError(
            f"{destination} must end in one of {', '.join(sorted(CONTAINERS))} "
            "(the output is H.264 + AAC in MP4 unless MOV or Matroska is asked for)."
        ) from None


def check_destination(source: Path, destination: Path) -> None:
    """UsageError unless DST is a new or replaceable file, in a folder that exists, not SRC.

    The folder is not created: a typo in it should not become a new tree (made as root).
    """
    folder = destination.parent
    if not folder.is_dir():
        raise UsageError(f"The output folder {folder} does not exist: create it first, or "
                         "choose another DST.")
    if destination.is_dir():
        raise UsageError(f"{destination} is a folder: give DST a file name (e.g. "
                         f"{destination / 'reversed.mp4'}).")
    same = os.path.realpath(source) == os.path.realpath(destination)
    if not same and destination.exists() and source.exists():
        same = os.path.samefile(source, destination)
    if same:
        raise UsageError(f"{destination} is the source itself: choose another DST (the source "
                         "is read while the output is written).")


def _refused(error: Exception, record: dict[str, Any], info: MediaInfo | None,
             started: float, log: Log | None) -> ReverseResult:
    seconds = time.monotonic() - started
    rejected = isinstance(error, MediaRejected)
    if log is not None:
        log.warning("media.reverse", ok=False, rejected=rejected, error=str(error),
                    seconds=round(seconds, 3), **record)
    return ReverseResult(False, None, asdict(info) if info else None, seconds, str(error),
                         rejected=rejected)


def prepare(
    media: MediaSettings,
    source: Path,
    destination: Path,
    progress: Progress = silent,
    deadline: float | None = None,
    *,
    log: Log | None = None,
    started: float | None = None,
    warm: WarmWorker | None = None,
) -> ReverseResult | SupervisedReversal:
    """Check ``source`` (size, probe, limits) and compute the job; nothing is started yet.

    Returns a refused or failed ReverseResult (logged to ``log`` if given), or the plan for
    :func:`vmkeeper.media.supervisor.supervise`. ``deadline`` (a :func:`time.monotonic`
    instant, default ``started`` + reverse_timeout_ms) is the reversal's one deadline: the
    probe's and the worker's. ``warm``: a worker already started (``media/warm.py``), which
    probes and, in the plan, reverses. Raises UsageError for a destination of unknown type, in
    a missing folder, or that is the source.
    """
    started = started or time.monotonic()
    deadline = deadline or started + media.reverse_timeout_ms / 1000
    container = container_for(destination)
    check_destination(source, destination)
    info: MediaInfo | None = None
    record: dict[str, Any] = {"source": str(source), "destination": str(destination)}
    try:
        limits = MediaLimits.from_settings(media)
        record["input_size_bytes"] = check_file(source, limits)
        progress(ProgressEvent(f"probing {source}", Phase.STARTED, step="probe"))
        info = probe_media(media, source, timeout_s=max(deadline - time.monotonic(), 0.001),
                           ask=warm.probe if warm is not None else None)
        record["input"] = asdict(info)
        check_media(info, limits)
    except (MediaRejected, MediaError, CommandNotFound) as error:
        return _refused(error, record, info, started, log)
    return SupervisedReversal(
        source=str(source.resolve()),
        destination=str(destination),
        container=container,
        frame_budget_bytes=media.memory_budget_mb * 1024 * 1024,
        encoder=EncoderSpec(media.video_codec, media.preset, media.crf, media.audio_codec,
                            media.audio_bitrate),
        started=started,
        deadline=deadline,
        timeout_ms=media.reverse_timeout_ms,
        record=record,
        input=record["input"],
        kept=warm.hand_over() if warm is not None else None,
    )


def reverse(
    media: MediaSettings,
    source: Path,
    destination: Path,
    progress: Progress = silent,
    deadline: float | None = None,
    *,
    log: Log | None = None,
) -> ReverseResult:
    """Write ``destination`` playing ``source`` backwards, sound included, in bounded memory.

    ``deadline`` is a :func:`time.monotonic` instant (default: now + reverse_timeout_ms). A
    refused input, a failure or a timeout is a result with ``ok`` false and ``error`` set; the
    destination is then untouched. Raises UsageError as :func:`prepare` does.
    """
    prepared = prepare(media, source, destination, progress, deadline, log=log)
    if isinstance(prepared, ReverseResult):
        return prepared
    return supervisor.supervise(prepared, progress, log)
