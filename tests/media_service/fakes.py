"""A scripted executor for the queue, runner and API tests that need no FFmpeg."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vmkeeper.media.isolation import IsolationInfo, Mechanism
from vmkeeper.media.jobqueue import MediaQueue
from vmkeeper.media.jobs import Job, WorkerMark
from vmkeeper.media.runner import Outcome, Reason
from vmkeeper.settings import Settings
from vmkeeper.watch.pressure import Pressure

from .helpers import FakeClock, Records


class ScriptedExecutor:
    """Outcomes by key (default: success, writing the output); counts runs per key."""

    def __init__(self) -> None:
        self.outcomes: dict[str, Outcome] = {}
        self.runs: list[str] = []

    def run(self, job: Job, source: Path, destination: Path,
            on_start: Callable[[WorkerMark], None]) -> Outcome:
        self.runs.append(job.key)
        on_start(WorkerMark(None, None, None))
        outcome = self.outcomes.get(job.key, Outcome(True, details={"output_size_bytes": 1}))
        if outcome.ok:
            destination.parent.mkdir(parents=True, exist_ok=True)
            destination.write_bytes(b"reversed")
        return outcome


MEDIA_FAILURE = Outcome(False, reason=Reason.MEDIA_ERROR, error="FFmpeg failed")
REJECTED = Outcome(False, rejected=True, reason=Reason.REJECTED, error="too long")


CALM = Pressure("psi", 0.0, False, "memory pressure 0.0% (PSI some avg10)")
HIGH = Pressure("psi", 55.0, True, "memory pressure 55.0% (PSI some avg10)")


def scripted_queue(settings: Settings, clock: FakeClock | None = None
                   ) -> tuple[MediaQueue, ScriptedExecutor, Records]:
    from vmkeeper.media.breaker import Breaker
    from vmkeeper.media.jobqueue import store_path
    from vmkeeper.media.jobs import JobStore

    clock = clock or FakeClock()
    executor = ScriptedExecutor()
    records = Records()
    store = JobStore(store_path(settings), clock)
    breaker = Breaker(settings.media.breaker, clock, memo=store.load_breaker(),
                      on_change=store.save_breaker)
    queue = MediaQueue(settings, store=store, breaker=breaker, executor=executor,
                       isolation=IsolationInfo(Mechanism.RLIMIT_AS, 1 << 30, "per process"),
                       log=records)
    # The host's real memory pressure must not decide these tests (test_admission does).
    queue.pressure = lambda: CALM
    return queue, executor, records
