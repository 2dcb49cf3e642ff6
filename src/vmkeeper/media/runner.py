"""Run queued jobs one at a time (or ``media.concurrency``), each in a memory-limited worker.

The runbook serialized reversals in the backend's memory (an in-process queue lost on every
restart, and FFmpeg inside PM2's tree); here the queue is the job store and each reversal runs
in the supervisor ``media reverse`` uses, under :mod:`vmkeeper.media.isolation`. The breaker is
asked before every launch, so while it is open queued jobs wait instead of launching heavy work.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from vmkeeper import proc, telemetry
from vmkeeper.errors import CommandNotFound, MediaRejected, UsageError
from vmkeeper.fileid import Identity, file_identity
from vmkeeper.media import service, supervisor
from vmkeeper.media.breaker import Breaker
from vmkeeper.media.isolation import Confinement, Isolation, kill_tree, release_cgroup
from vmkeeper.media.job import ReverseResult, SupervisedReversal
from vmkeeper.media.jobs import Job, JobState, JobStore, WorkerMark
from vmkeeper.settings import MediaSettings
from vmkeeper.telemetry import record

# The supervisor stops its worker at the job's deadline and cleans up; only if it is still there
# this much later (hung, stopped) does the service kill the whole confined tree itself.
_KILL_MARGIN_S = 10.0
_CANCEL_POLL_S = 0.2  # how soon a stopping service notices, while a worker runs

Log = Callable[..., None]  # log(event, **fields): one JSON record


class Reason:
    MEMORY_LIMIT = "memory limit"
    TIMEOUT = "timeout"
    CRASH = "crash"
    MEDIA_ERROR = "media error"
    REJECTED = "rejected"
    ATTEMPTS = "attempts exhausted"
    CANCELLED = "cancelled"  # the service is stopping: the job goes back to the queue


@dataclass(frozen=True)
class Outcome:
    ok: bool
    rejected: bool = False
    reason: str | None = None
    error: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


class Executor(Protocol):
    def run(self, job: Job, source: Path, destination: Path,
            on_start: Callable[[WorkerMark], None]) -> Outcome: ...


Prepared = ReverseResult | SupervisedReversal
Upcoming = Callable[[], "tuple[str, Path, Path] | None"]  # next queued job: id, source, dest


class Lookahead:
    """The next queued job's checks and probe, done while the current job's worker runs.

    The probe is a child Python importing PyAV: most of the service's per-job cost on top of
    the reversal (measured in bench/media_service.py). Done ahead it overlaps the reversal
    instead of preceding it (one more ~45 MiB process for a moment, beside the worker). A plan
    made ahead is used only for the same file unchanged (:func:`vmkeeper.fileid.file_identity`),
    and gets its deadline when its job starts.
    """

    def __init__(self, media: MediaSettings,
                 prepare: Callable[[MediaSettings, Path, Path], Prepared] = service.prepare
                 ) -> None:
        self.media = media
        self.prepare = prepare
        self.upcoming: Upcoming | None = None  # set by the queue that owns the executor
        self._lock = threading.Lock()
        self._ready: dict[str, tuple[Identity, Prepared]] = {}
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.upcoming is not None:
            self._thread = threading.Thread(target=self._prepare_next, daemon=True,
                                            name="media-lookahead")
            self._thread.start()

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(self.media.ffprobe_timeout_ms / 1000 + 5)
            self._thread = None

    def _prepare_next(self) -> None:
        assert self.upcoming is not None
        try:
            found = self.upcoming()
        except Exception:  # noqa: BLE001 - an optimisation: the job is prepared when it runs
            return
        if found is None or found[0] in self._ready:
            return
        job_id, source, destination = found
        identity = file_identity(source)
        try:
            destination.parent.mkdir(parents=True, exist_ok=True)
            prepared = self.prepare(self.media, source, destination)
        except (UsageError, OSError):
            return
        with self._lock:
            self._ready = {job_id: (identity, prepared)} if identity else {}  # only the next job

    def take(self, job_id: str, source: Path) -> Prepared | None:
        """The plan made ahead for ``job_id``, if its source is still the file probed."""
        with self._lock:
            entry = self._ready.pop(job_id, None)
        if entry is None or entry[0] != file_identity(source):
            return None
        return entry[1]


class IsolatedExecutor:
    """The real executor: the supervisor under the job's memory limit, and nothing in between.

    Per job: :func:`vmkeeper.media.service.prepare` here (the checks and the probe, in a child
    under FFPROBE_TIMEOUT_MS; for a queued job, while the job before it runs: :class:`Lookahead`),
    then ``python -P -m vmkeeper.media.supervisor`` — the program
    ``media reverse`` execs — which confines itself, starts the worker and enforces the job's
    one deadline; the service only waits, and kills the whole confined tree if the supervisor
    itself outlives that deadline by more than it needs to stop its worker.
    """

    def __init__(self, media: MediaSettings, isolation: Isolation, *,
                 command: Callable[[SupervisedReversal], list[str]] = supervisor.command,
                 kill_margin_s: float = _KILL_MARGIN_S) -> None:
        self.media = media
        self.isolation = isolation
        self.command = command  # the supervisor's argv (a test passes one that hangs)
        self.kill_margin_s = kill_margin_s
        # Set when the service stops: running workers are killed whole, their jobs requeued.
        self.cancel = threading.Event()
        self.lookahead = Lookahead(media)

    def run(self, job: Job, source: Path, destination: Path,
            on_start: Callable[[WorkerMark], None]) -> Outcome:
        started = time.monotonic()
        deadline = started + self.media.reverse_timeout_ms / 1000
        # The service's own output tree (storage_root/output_dir/…): made here, not by the
        # supervisor, which never creates a folder it was not given.
        destination.parent.mkdir(parents=True, exist_ok=True)
        prepared = self.lookahead.take(job.id, source)
        if isinstance(prepared, SupervisedReversal):
            prepared = prepared._replace(started=started, deadline=deadline)
        elif prepared is None:
            try:
                prepared = service.prepare(self.media, source, destination, deadline=deadline,
                                           started=started)
            except UsageError as error:
                return Outcome(False, rejected=True, reason=Reason.REJECTED, error=str(error))
        if isinstance(prepared, ReverseResult):
            return _outcome(prepared, prepared.seconds, None)
        confinement = self.isolation.confine(f"{job.id}-{job.attempts}")
        try:
            plan = prepared._replace(as_json=True, confine=confinement.limits())
            return self._supervise(confinement, plan, on_start)
        finally:
            confinement.release()

    def _supervise(self, confinement: Confinement, plan: SupervisedReversal,
                   on_start: Callable[[WorkerMark], None]) -> Outcome:
        argv = confinement.argv(self.command(plan))
        stopped_by_us = False
        try:
            with tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
                with proc.start(argv, timeout=plan.deadline + self.kill_margin_s - time.monotonic(),
                                stdout=stdout, stderr=stderr) as running:
                    with contextlib.suppress(psutil.Error):
                        on_start(WorkerMark(running.pid,
                                            psutil.Process(running.pid).create_time(),
                                            confinement.cgroup))
                    self.lookahead.start()
                    stopped_by_us = not self._wait(running)
                    # Whatever the worker left behind (an FFmpeg that escaped its group) goes.
                    confinement.kill_all(running.pid)
                    code = running.poll()
                self.lookahead.join()
                stdout.seek(0)
                stderr.seek(0)
                answer = stdout.read().decode(errors="replace")
                stderr_tail = proc.tail(stderr.read().decode(errors="replace"), 5)
        except CommandNotFound as error:
            return Outcome(False, reason=Reason.CRASH, error=str(error))
        result = _result(answer)
        seconds = time.monotonic() - plan.started
        peak = max(confinement.peak_bytes() or 0, (result.peak_memory_bytes or 0) if result
                   else 0) or None
        message = (result.error if result else None) or stderr_tail or \
            f"the supervisor exited with code {code}"
        if self.cancel.is_set() and not (result and result.ok):
            return Outcome(False, reason=Reason.CANCELLED, error="The service stopped.")
        if stopped_by_us or (result and not result.ok and time.monotonic() >= plan.deadline):
            return Outcome(False, reason=Reason.TIMEOUT, details=_details(result, seconds, peak),
                           error=message if result else (
                               f"The job took longer than {plan.timeout_ms} ms and its worker "
                               "tree was killed."))
        if confinement.memory_exceeded(code, message + "\n" + stderr_tail):
            limit_mb = self.media.worker_memory_limit_mb
            return Outcome(False, reason=Reason.MEMORY_LIMIT,
                           details=_details(result, seconds, peak), error=(
                f"The reversal needed more than the worker memory limit of {limit_mb} MiB "
                f"(media.worker_memory_limit_mb) and was stopped: {message}"))
        if result is None:
            return Outcome(False, reason=Reason.CRASH, error=message,
                           details=_details(None, seconds, peak))
        return _outcome(result, seconds, peak)

    def _wait(self, running: proc.Running) -> bool:
        """Wait for the supervisor; False if it had to be stopped (backstop or service stop)."""
        while True:
            try:
                running.popen.wait(timeout=min(max(running.remaining(), 0.001), _CANCEL_POLL_S))
                return True
            except subprocess.TimeoutExpired:
                if running.remaining() <= 0 or self.cancel.is_set():
                    return False


def _result(stdout: str) -> ReverseResult | None:
    with contextlib.suppress(ValueError, TypeError):
        return ReverseResult.from_json(stdout)
    return None


def _details(result: ReverseResult | None, seconds: float, peak: int | None) -> dict[str, Any]:
    details: dict[str, Any] = {"worker_seconds": round(seconds, 3), "peak_memory_bytes": peak}
    if result is not None:
        details.update({"input": result.input,
                        "input_size_bytes": (result.input or {}).get("size_bytes"),
                        "output_size_bytes": result.output_size_bytes,
                        "stats": result.stats._asdict() if result.stats else None})
    return details


def _outcome(result: ReverseResult, seconds: float, peak: int | None) -> Outcome:
    details = _details(result, seconds, peak)
    if result.ok:
        return Outcome(True, details=details)
    if result.rejected:
        return Outcome(False, rejected=True, reason=Reason.REJECTED, error=result.error,
                       details=details)
    return Outcome(False, reason=Reason.MEDIA_ERROR, error=result.error, details=details)


def up_to_date(source: Path, destination: Path) -> bool:
    try:
        return destination.stat().st_mtime_ns > source.stat().st_mtime_ns
    except OSError:
        return False


Resolve = Callable[[str], tuple[Path, Path]]  # key -> (source, destination)


class JobRunner:
    """Claims queued jobs, runs them through the executor, settles the breaker and the store."""

    def __init__(self, store: JobStore, breaker: Breaker, executor: Executor, resolve: Resolve,
                 log: Log, max_attempts: int) -> None:
        self.store = store
        self.breaker = breaker
        self.executor = executor
        self.resolve = resolve
        self.log = log
        self.max_attempts = max_attempts
        # A queued job's trace context (the request that submitted it): its span continues it.
        self.traces: dict[str, Mapping[str, str]] = {}

    def log_job(self, job: Job, **extra: Any) -> None:
        details = job.details
        self.log("media.job", job_id=job.id, key=job.key, state=job.state.value,
                 attempt=job.attempts, reason=job.reason, error=job.error, output=job.output,
                 input_size_bytes=details.get("input_size_bytes"),
                 output_size_bytes=details.get("output_size_bytes"),
                 input=details.get("input"), seconds=_rounded(job.seconds),
                 peak_memory_bytes=details.get("peak_memory_bytes"), **extra)
        if telemetry.active() is not None:  # the queue's families (issue 15)
            counts = self.store.counts()
            record.media_job(job, counts[JobState.QUEUED] + counts[JobState.RUNNING],
                             self.breaker.status())

    def recover(self) -> list[Job]:
        """Settle jobs a dead service left running: kill their remains, then finish or requeue."""
        settled = []
        for job, mark in self.store.interrupted():
            killed = _kill_remains(mark)
            source, destination = self.resolve(job.key)
            if up_to_date(source, destination):
                # The orphaned worker finished the output before it was found: nothing to redo.
                job = self.store.finish(job.id, JobState.DONE, output=str(destination),
                                        details=job.details)
            elif job.attempts >= self.max_attempts:
                job = self.store.finish(
                    job.id, JobState.FAILED, reason=Reason.ATTEMPTS, error=(
                        f"The service stopped during each of {job.attempts} attempts "
                        f"(media.max_attempts = {self.max_attempts}); not retried."))
            else:
                job = self.store.requeue(job.id)
            self.log_job(job, recovered=True, killed_pids=killed)
            settled.append(job)
        return settled

    def run_once(self) -> Job | None:
        """Run the next queued job if the breaker allows one now; None if nothing ran."""
        if not self.breaker.try_start():
            return None
        job = self.store.claim_next()
        if job is None:
            self.breaker.record_neutral()
            return None
        self.log_job(job)
        destination: Path | None = None
        try:
            source, destination = self.resolve(job.key)
            with telemetry.continued(self.traces.pop(job.id, {})):
                outcome = self.executor.run(
                    job, source, destination, lambda mark: self.store.mark_worker(job.id, mark))
        except MediaRejected as error:
            # The key was fine at submit and no longer is (its source swapped for a symlink out
            # of the root, or removed): the caller's input, not a media failure for the breaker.
            outcome = Outcome(False, rejected=True, reason=Reason.REJECTED, error=str(error))
        except Exception as error:  # noqa: BLE001 - a bug must fail the job, not the loop
            outcome = Outcome(False, reason=Reason.CRASH, error=f"{type(error).__name__}: {error}")
        return self.settle(job, outcome, destination=str(destination) if destination else None)

    def settle(self, job: Job, outcome: Outcome, destination: str | None) -> Job:
        if outcome.reason == Reason.CANCELLED:
            finished = self.store.requeue(job.id, refund=True)
            self.breaker.record_neutral()
        elif outcome.ok:
            finished = self.store.finish(job.id, JobState.DONE, output=destination,
                                         details=outcome.details)
            self.breaker.record_success()
        elif outcome.rejected:
            finished = self.store.finish(job.id, JobState.REJECTED, error=outcome.error,
                                         reason=Reason.REJECTED, details=outcome.details)
            self.breaker.record_neutral()
        else:
            finished = self.store.finish(job.id, JobState.FAILED, error=outcome.error,
                                         reason=outcome.reason, details=outcome.details)
            self.breaker.record_failure()
        self.log_job(finished, breaker=self.breaker.status().state.value)
        return finished


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _kill_remains(mark: WorkerMark) -> list[int]:
    killed: list[int] = []
    if mark.cgroup:
        killed += release_cgroup(mark.cgroup)
    if mark.pid:
        with contextlib.suppress(psutil.Error):
            process = psutil.Process(mark.pid)
            # A recycled pid belongs to someone else: only the recorded process is ours.
            if mark.create_time is None or abs(process.create_time() - mark.create_time) < 0.01:
                killed += kill_tree(mark.pid)
    return killed


class RunnerLoop:
    """``concurrency`` threads calling :meth:`JobRunner.run_once`; woken by each submit."""

    def __init__(self, runner: JobRunner, concurrency: int, idle_s: float = 1.0) -> None:
        self.runner = runner
        self.concurrency = concurrency
        self.idle_s = idle_s
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []

    def start(self) -> None:
        for number in range(self.concurrency):
            thread = threading.Thread(target=self._loop, name=f"media-runner-{number}",
                                      daemon=True)
            thread.start()
            self.threads.append(thread)

    def _loop(self) -> None:
        while not self.stopping.is_set():
            if self.runner.run_once() is None:
                self.wake.wait(self._idle())
                self.wake.clear()

    def _idle(self) -> float:
        retry = self.runner.breaker.status().retry_after_s
        return min(self.idle_s, retry) if retry else self.idle_s

    def stop(self, timeout: float = 5.0) -> None:
        self.stopping.set()
        self.wake.set()
        for thread in self.threads:
            thread.join(timeout)
