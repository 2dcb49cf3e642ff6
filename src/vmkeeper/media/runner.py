"""Run queued jobs one at a time (or ``media.concurrency``), each in a memory-limited worker.

The runbook serialized reversals in the backend's memory (an in-process queue lost on every
restart, and FFmpeg inside PM2's tree); here the queue is the job store and each reversal runs
in ``python -m vmkeeper.media.jobchild`` under :mod:`vmkeeper.media.isolation`. The breaker is
asked before every launch, so while it is open queued jobs wait instead of launching heavy work.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import psutil

from vmkeeper import proc
from vmkeeper.errors import CommandNotFound
from vmkeeper.media.breaker import Breaker
from vmkeeper.media.isolation import Confinement, Isolation, kill_tree, release_cgroup
from vmkeeper.media.jobs import Job, JobState, JobStore, WorkerMark
from vmkeeper.settings import MediaSettings

JOB_CHILD_MODULE = "vmkeeper.media.jobchild"
# Python's start, the probe and the kill after the reversal's own deadline: the worker gets this
# much more than FFMPEG_REVERSE_TIMEOUT_MS before the service kills its whole tree itself.
_GRACE_S = 10.0
_POLL_S = 0.1

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


def _tree_rss(pid: int) -> int:
    try:
        root = psutil.Process(pid)
        total = 0
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total
    except psutil.Error:
        return 0


class IsolatedExecutor:
    """The real executor: one job child per job, under the memory limit, killed whole on expiry."""

    def __init__(self, media: MediaSettings, isolation: Isolation) -> None:
        self.media = media
        self.isolation = isolation
        # Set when the service stops: running workers are killed whole, their jobs requeued.
        self.cancel = threading.Event()

    def run(self, job: Job, source: Path, destination: Path,
            on_start: Callable[[WorkerMark], None]) -> Outcome:
        timeout_s = self.media.reverse_timeout_ms / 1000
        request = {"media": self.media.model_dump(mode="json"), "source": str(source),
                   "destination": str(destination), "timeout_s": timeout_s}
        confinement = self.isolation.confine(f"{job.id}-{job.attempts}")
        try:
            with tempfile.TemporaryDirectory(prefix="vmkeeper-job-") as folder:
                return self._run(confinement, request, Path(folder), timeout_s + _GRACE_S,
                                 on_start)
        finally:
            confinement.release()

    def _run(self, confinement: Confinement, request: dict[str, Any], folder: Path,
             timeout_s: float, on_start: Callable[[WorkerMark], None]) -> Outcome:
        argv = confinement.argv([sys.executable, "-m", JOB_CHILD_MODULE])
        (folder / "request.json").write_text(json.dumps(request))
        started = time.monotonic()
        peak_sampled = 0
        timed_out = False
        try:
            with (folder / "request.json").open("rb") as stdin, \
                    (folder / "stdout").open("wb") as stdout, \
                    (folder / "stderr").open("wb") as stderr, \
                    proc.start(argv, timeout=timeout_s, stdin=stdin, stdout=stdout,
                               stderr=stderr, preexec_fn=confinement.preexec()) as running:
                with contextlib.suppress(psutil.Error):
                    on_start(WorkerMark(running.pid, psutil.Process(running.pid).create_time(),
                                        confinement.cgroup))
                while running.poll() is None:
                    if running.remaining() <= 0 or self.cancel.is_set():
                        timed_out = not self.cancel.is_set()
                        confinement.kill_all(running.pid)
                        break
                    peak_sampled = max(peak_sampled, _tree_rss(running.pid))
                    time.sleep(_POLL_S)
                # Whatever the worker left behind (an FFmpeg that escaped its group) goes too.
                confinement.kill_all(running.pid)
                code = running.poll()
        except CommandNotFound as error:
            return Outcome(False, reason=Reason.CRASH, error=str(error))
        seconds = time.monotonic() - started
        answer = _answer((folder / "stdout").read_text(errors="replace"))
        stderr_tail = proc.tail((folder / "stderr").read_text(errors="replace"), 5)
        details: dict[str, Any] = {"worker_seconds": round(seconds, 3)}
        peak = max(peak_sampled, confinement.peak_bytes() or 0,
                   int(answer.get("peak_memory_bytes") or 0) if answer else 0)
        details["peak_memory_bytes"] = peak or None
        if answer:
            details.update({"input": answer.get("input"),
                            "input_size_bytes": (answer.get("input") or {}).get("size_bytes"),
                            "output_size_bytes": answer.get("output_size_bytes"),
                            "stats": answer.get("stats")})
        message = str((answer or {}).get("error") or stderr_tail or f"worker exited with {code}")
        if self.cancel.is_set() and not (answer and answer.get("ok")):
            return Outcome(False, reason=Reason.CANCELLED, error="The service stopped.")
        if timed_out:
            return Outcome(False, reason=Reason.TIMEOUT, details=details, error=(
                f"The job took longer than {timeout_s:g} s and its worker tree was killed."))
        if confinement.memory_exceeded(code, message + "\n" + stderr_tail):
            limit_mb = self.media.worker_memory_limit_mb
            return Outcome(False, reason=Reason.MEMORY_LIMIT, details=details, error=(
                f"The reversal needed more than the worker memory limit of {limit_mb} MiB "
                f"(media.worker_memory_limit_mb) and was stopped: {message}"))
        if answer and answer.get("ok"):
            return Outcome(True, details=details)
        if answer and answer.get("rejected"):
            return Outcome(False, rejected=True, reason=Reason.REJECTED, error=message,
                           details=details)
        if answer and "took longer than" in message:
            return Outcome(False, reason=Reason.TIMEOUT, error=message, details=details)
        reason = Reason.MEDIA_ERROR if answer else Reason.CRASH
        return Outcome(False, reason=reason, error=message, details=details)


def _answer(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        with contextlib.suppress(json.JSONDecodeError):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    return None


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

    def log_job(self, job: Job, **extra: Any) -> None:
        details = job.details
        self.log("media.job", job_id=job.id, key=job.key, state=job.state.value,
                 attempt=job.attempts, reason=job.reason, error=job.error, output=job.output,
                 input_size_bytes=details.get("input_size_bytes"),
                 output_size_bytes=details.get("output_size_bytes"),
                 input=details.get("input"), seconds=_rounded(job.seconds),
                 peak_memory_bytes=details.get("peak_memory_bytes"), **extra)

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
            outcome = self.executor.run(
                job, source, destination, lambda mark: self.store.mark_worker(job.id, mark))
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
