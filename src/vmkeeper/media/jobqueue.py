"""The reverse-video job service: storage keys, dedup, the breaker at the door, the runner loop.

What the HTTP agent and the CLI call. A storage key is a relative path under
``media.storage_root``; the reversed output of key K is ``<storage_root>/<output_dir>/K``.
The runbook's TourPagesService deduplicated by key for one caller; here every caller shares it:
one active job per key, and an output newer than its source is answered without running.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any, TextIO

from vmkeeper import flock, logrecord, telemetry
from vmkeeper.errors import BreakerOpen, MediaRejected, VmkeeperError
from vmkeeper.media.breaker import Breaker, BreakerStatus
from vmkeeper.media.isolation import Isolation, IsolationInfo, detect
from vmkeeper.media.job import CONTAINERS
from vmkeeper.media.jobs import Job, JobState, JobStore
from vmkeeper.media.runner import (
    Executor,
    IsolatedExecutor,
    JobRunner,
    Log,
    RunnerLoop,
    up_to_date,
)
from vmkeeper.settings import Settings
from vmkeeper.watch.pressure import Pressure, read_pressure


class KeyRefused(MediaRejected):
    """A storage key that is absolute, climbs with ``..`` or resolves outside the root."""

    exit_code = 2


class SourceMissing(MediaRejected):
    pass


class JobNotFound(VmkeeperError):
    pass


class QueueFull(VmkeeperError):
    """More jobs are queued than ``media.max_queued``: try again later (HTTP 429)."""


class BreakerRefused(BreakerOpen):
    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class MemoryPressureRefused(BreakerRefused):
    """New jobs wait while the host is under memory pressure (the OOM early warning,
    watch/pressure.py); running ones keep their hard limit. HTTP 503 with Retry-After."""


class Disposition(str, Enum):
    QUEUED = "queued"  # a new job
    DEDUPLICATED = "deduplicated"  # the key's queued or running job
    CACHED = "cached"  # the output is already newer than its source


@dataclass(frozen=True)
class JobView:
    """A job as callers see it: the store's row plus its place in the queue."""

    job: Job
    position: int | None
    disposition: Disposition | None = None


@dataclass(frozen=True)
class Health:
    status: str
    pid: int
    breaker: BreakerStatus
    isolation: IsolationInfo
    counts: dict[str, int]
    concurrency: int
    memory_pressure: str | None = None  # set while new jobs are refused for it


# Linux refuses longer names (ENAMETOOLONG); refused here with a sentence instead.
MAX_KEY_CHARS = 1024
_MAX_PART_BYTES = 255


def resolve_key(root: Path, output_dir: str, key: str) -> tuple[Path, Path]:
    """(source, destination) for ``key``; KeyRefused unless both stay inside ``root``.

    Checked on the text first (length, no absolute path, no ``..``, no NUL) so an escaping or
    unusable key never reaches the disk; then resolved through symlinks and compared with the
    resolved root.
    """
    if len(key) > MAX_KEY_CHARS:
        raise KeyRefused(f"The storage key is {len(key)} characters long; at most "
                         f"{MAX_KEY_CHARS} are accepted.")
    if not key or "\x00" in key or "\\" in key:
        raise KeyRefused(f"Storage key {key!r} is empty or has a NUL or backslash.")
    pure = PurePosixPath(key)
    if pure.is_absolute() or ".." in pure.parts:
        raise KeyRefused(f"Storage key {key!r} must be a relative path without '..'.")
    if any(len(part.encode("utf-8", "surrogateescape")) > _MAX_PART_BYTES for part in pure.parts):
        raise KeyRefused(f"A folder or file name in storage key {key!r} is over "
                         f"{_MAX_PART_BYTES} bytes.")
    real_root = root.resolve()
    try:
        source = (real_root / pure).resolve()
    except (OSError, RuntimeError) as error:  # a symlink loop, a name the filesystem refuses
        raise KeyRefused(f"Storage key {key!r} cannot be resolved: {error}.") from None
    if not source.is_relative_to(real_root) or source == real_root:
        raise KeyRefused(f"Storage key {key!r} resolves outside the storage root.")
    relative = source.relative_to(real_root)
    suffix = relative.suffix.lower() if relative.suffix.lower() in CONTAINERS else ".mp4"
    destination = (real_root / output_dir / relative).with_suffix(suffix)
    if not destination.resolve().is_relative_to(real_root):
        raise KeyRefused(f"The output for {key!r} would land outside the storage root.")
    return source, destination


def canonical_key(root: Path, source: Path) -> str:
    """The one spelling of a resolved source: ``clip.mp4/``, ``./clip.mp4`` and ``.//clip.mp4``
    (or a symlink to it inside the root) are the same file, so the same job."""
    return source.relative_to(root.resolve()).as_posix()


def json_logger(stream: TextIO = sys.stderr) -> Log:
    """One JSON line per event on stderr (PM2 and journald keep it), whatever level the CLI's
    own logging filters at: these records are the service's audit trail, not debug output."""
    lock = threading.Lock()

    def log(event: str, **fields: Any) -> None:
        text = logrecord.line(event, **fields)
        with lock:
            stream.write(text + "\n")
            stream.flush()

    return log


def store_path(settings: Settings) -> Path:
    return settings.state_dir / "media" / "jobs.sqlite3"


class MediaQueue:
    def __init__(self, settings: Settings, *, store: JobStore, breaker: Breaker,
                 executor: Executor, isolation: IsolationInfo, log: Log) -> None:
        self.settings = settings
        self.media = settings.media
        self.store = store
        self.breaker = breaker
        self.isolation = isolation
        self.log = log
        self.runner = JobRunner(store, breaker, executor, self.resolve, log,
                                self.media.max_attempts)
        self.loop = RunnerLoop(self.runner, self.media.concurrency)
        if isinstance(executor, IsolatedExecutor):
            executor.lookahead.upcoming = self._upcoming
        self.deduplicated = 0
        self.cached = 0
        self.refused = 0
        # The admission seam for tests.
        self.pressure: Callable[[], Pressure] = lambda: read_pressure(settings.watch)

    def resolve(self, key: str) -> tuple[Path, Path]:
        return resolve_key(self.media.storage_root, self.media.output_dir, key)

    def _upcoming(self) -> tuple[str, Path, Path] | None:
        """The job that runs next (its id, source, destination), for the executor's lookahead."""
        queued = self.store.select(JobState.QUEUED, 1)
        if not queued:
            return None
        try:
            source, destination = self.resolve(queued[0].key)
        except MediaRejected:
            return None
        return queued[0].id, source, destination

    def view(self, job: Job, disposition: Disposition | None = None) -> JobView:
        return JobView(job, self.store.position(job), disposition)

    def submit(self, key: str, *, force: bool = False) -> JobView:
        """Queue ``key``; KeyRefused, SourceMissing, QueueFull, or BreakerRefused while open.

        The key is stored in its canonical spelling (:func:`canonical_key`), so every spelling
        of one file shares one job.
        """
        source, destination = self.resolve(key)
        if not source.is_file():
            raise SourceMissing(f"No source video for key {key!r} under the storage root.")
        key = canonical_key(self.media.storage_root, source)
        active = self.store.active_for(key)
        if active is not None:
            self.deduplicated += 1
            return self.view(active, Disposition.DEDUPLICATED)
        if not force and up_to_date(source, destination):
            self.cached += 1
            job = self.store.record_cached(key, str(destination), {
                "output_size_bytes": destination.stat().st_size,
                "input_size_bytes": source.stat().st_size})
            self.runner.log_job(job, cached=True)
            return self.view(job, Disposition.CACHED)
        status = self.breaker.status()
        if not self.breaker.admits_new_work():
            self.refused += 1
            retry = status.retry_after_s or 0.0
            raise BreakerRefused(
                f"The FFmpeg circuit breaker is open after {status.consecutive_failures} media "
                f"failures: new jobs are refused for {retry:.0f} s more.", retry)
        pressure = self.pressure()
        if pressure.high:
            self.refused += 1
            raise MemoryPressureRefused(f"The host is under memory pressure ({pressure.line}): "
                                        "new jobs are refused until it eases.", 30.0)
        if self.store.counts()[JobState.QUEUED] >= self.media.max_queued:
            self.refused += 1
            raise QueueFull(f"{self.media.max_queued} jobs are already queued "
                            "(media.max_queued): submit again later.")
        submitted = self.store.submit(key)
        if not submitted.created:
            self.deduplicated += 1
            return self.view(submitted.job, Disposition.DEDUPLICATED)
        self.runner.log_job(submitted.job)
        traced = telemetry.child_env()  # the job's span continues the submitting request's trace
        if traced:
            self.runner.traces[submitted.job.id] = traced
        self.loop.wake.set()
        return self.view(submitted.job, Disposition.QUEUED)

    def get(self, job_id: str) -> JobView:
        job = self.store.get(job_id)
        if job is None:
            raise JobNotFound(f"No job {job_id!r}.")
        return self.view(job)

    def jobs(self, state: JobState | None = None, limit: int = 100) -> list[JobView]:
        return [self.view(job) for job in self.store.select(state, limit)]

    def health(self) -> Health:
        pressure = self.pressure()
        return Health("ok", os.getpid(), self.breaker.status(), self.isolation,
                      {state.value: count for state, count in self.store.counts().items()},
                      self.media.concurrency, pressure.line if pressure.high else None)

    def start(self) -> None:
        self.runner.recover()
        self.loop.start()

    def stop(self) -> None:
        executor = self.runner.executor
        if isinstance(executor, IsolatedExecutor):
            executor.cancel.set()
        self.loop.stop(timeout=15)
        self.store.close()


@dataclass
class ServiceLock:
    """One service per job store: a second would run the same queue twice at once."""

    path: Path
    held: flock.HeldLock | None = None

    def acquire(self) -> None:
        self.held = flock.take(self.path, "media service", refusal=flock.Refusal(
            f"Another media service already runs on {self.path.parent}",
            "stop it first (one service per job store)."))

    def release(self) -> None:
        if self.held is not None:
            self.held.release()
            self.held = None


def open_queue(settings: Settings, *, clock: Callable[[], float] = time.time,
               isolation: Isolation | None = None, executor: Executor | None = None,
               log: Log | None = None) -> MediaQueue:
    """The queue over the settings' job store, its breaker restored from the store."""
    store = JobStore(store_path(settings), clock)
    isolation = isolation or detect(settings.media.worker_memory_limit_mb * 1024 * 1024)
    breaker = Breaker(settings.media.breaker, clock, memo=store.load_breaker(),
                      on_change=store.save_breaker)
    return MediaQueue(settings, store=store, breaker=breaker,
                      executor=executor or IsolatedExecutor(settings.media, isolation),
                      isolation=isolation.info, log=log or json_logger())
