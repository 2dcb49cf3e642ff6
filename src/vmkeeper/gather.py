"""The one concurrent gathering: many independent jobs, each in its own thread under its own
deadline, every outcome a value.

Health's facts, doctor's checks and the bundle's sources all ask the machine several slow
questions at once, any of which can hang (a statvfs on a dead NFS mount, a wedged PM2 daemon).
So a job that fails is a value carrying the reason, a job that overruns is a value saying so,
and neither costs the others their answers. A job past its deadline is abandoned, not killed
(Python cannot kill a thread): its thread is a daemon so it never holds up the process's exit,
and it stops counting against ``workers`` so it cannot starve the jobs still waiting.

Typed: :meth:`Gathering.add` returns a :class:`Pending` of the job's own result type, so a
caller gathering a list, a dict and a string reads each back as what it is.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from vmkeeper.progress import Progress, ProgressEvent, silent

T = TypeVar("T")


def describe_error(error: BaseException) -> str:
    """The default reason of a failed job: its message, else the exception's name."""
    return str(error) or type(error).__name__


@dataclass(frozen=True)
class Got(Generic[T]):
    """One job's outcome: its value, or why it could not be had; and how long it took."""

    value: T | None
    error: str | None = None
    seconds: float = 0.0
    timed_out: bool = False

    @property
    def ok(self) -> bool:
        return self.error is None


class Pending(Generic[T]):
    """A job added to a gathering; :attr:`got` holds its outcome once the gathering has run."""

    def __init__(self, name: str, job: Callable[[], T], timeout_s: float,
                 describe: Callable[[BaseException], str]) -> None:
        self.name = name
        self.timeout_s = timeout_s
        self._job = job
        self._describe = describe
        self._got: Got[T] | None = None
        self.started: float | None = None

    @property
    def got(self) -> Got[T]:
        if self._got is None:
            raise RuntimeError(f"the gathering holding {self.name!r} has not run")
        return self._got

    @property
    def settled(self) -> bool:
        return self._got is not None

    def execute(self, clock: Callable[[], float]) -> Callable[[], bool]:
        """Run the job here, now (any exception becomes the outcome's error); return what
        records the outcome, for the caller to call under its lock."""
        started = clock()
        try:
            got: Got[T] = Got(self._job(), None, clock() - started)
        except Exception as error:  # noqa: BLE001 - a failed job is a value, by design
            got = Got(None, self._describe(error), clock() - started)
        return lambda: self._settle(got)

    def time_out(self, now: float) -> bool:
        """Record a time-out unless the job has an outcome; True if it timed out."""
        return self._settle(Got(None, f"no answer within {self.timeout_s:g} s",
                                now - (self.started or now), timed_out=True))

    def _settle(self, got: Got[T]) -> bool:
        if self._got is not None:
            return False  # the first outcome stands: a late answer after a time-out is dropped
        self._got = got
        return True


class _Task(Protocol):
    """What a gathering needs of a job, whatever its result type."""

    name: str
    timeout_s: float
    started: float | None

    @property
    def settled(self) -> bool: ...

    def execute(self, clock: Callable[[], float]) -> Callable[[], bool]: ...

    def time_out(self, now: float) -> bool: ...


class Gathering:
    """Jobs to run at once: ``add`` them, ``run`` once, then read each :class:`Pending`.

    Each job gets ``timeout_s`` (or its own) from the moment it starts; at most ``workers``
    run at a time (all of them when None).
    """

    def __init__(self, *, timeout_s: float, workers: int | None = None, name: str = "gather",
                 describe: Callable[[BaseException], str] = describe_error,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if workers is not None and workers < 1:
            raise ValueError("a gathering needs at least one worker")
        self.timeout_s = timeout_s
        self.workers = workers
        self.name = name
        self._describe = describe
        self._clock = clock
        self._jobs: list[_Task] = []
        self._changed = threading.Condition()

    def add(self, name: str, job: Callable[[], T], *, timeout_s: float | None = None,
            describe: Callable[[BaseException], str] | None = None) -> Pending[T]:
        pending = Pending(name, job, self.timeout_s if timeout_s is None else timeout_s,
                          describe or self._describe)
        self._jobs.append(pending)
        return pending

    def run(self, progress: Progress = silent) -> None:
        """Run every job; return when each has an outcome (a value, an error or a time-out)."""
        waiting = list(self._jobs)
        active: list[_Task] = []
        limit = self.workers or max(len(waiting), 1)
        with self._changed:
            while waiting or active:
                while waiting and len(active) < limit:
                    job = waiting.pop(0)
                    self._start(job)
                    active.append(job)
                now = self._clock()
                for job in list(active):
                    if job.settled:
                        active.remove(job)
                    elif now - (job.started or now) >= job.timeout_s:
                        active.remove(job)  # abandoned: it no longer holds a worker
                        if job.time_out(now):
                            progress(ProgressEvent(
                                f"gave up on {job.name} after {job.timeout_s:g} s"))
                if active:
                    first = min((job.started or now) + job.timeout_s for job in active)
                    self._changed.wait(max(first - self._clock(), 0.001))

    def _start(self, job: _Task) -> None:
        job.started = self._clock()

        def work() -> None:
            record = job.execute(self._clock)
            with self._changed:
                record()
                self._changed.notify_all()

        # Daemon: a job stuck past its deadline (a hung NFS read) must not hold up exit. The
        # job runs in a copy of the caller's context: its commands' spans stay in its trace.
        threading.Thread(target=contextvars.copy_context().run, args=(work,),
                         name=f"{self.name}:{job.name}", daemon=True).start()
