from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from vmkeeper.gather import Gathering
from vmkeeper.progress import ProgressEvent


@pytest.fixture
def hang() -> Iterator[threading.Event]:
    """An event a job blocks on, set when the test ends so no thread outlives it."""
    release = threading.Event()
    yield release
    release.set()


def test_each_job_comes_back_as_its_own_typed_value() -> None:
    gathering = Gathering(timeout_s=5)
    numbers = gathering.add("numbers", lambda: [1, 2, 3])
    word = gathering.add("word", lambda: "node v20")
    gathering.run()
    assert numbers.got.value == [1, 2, 3]
    assert word.got.value == "node v20"
    assert numbers.got.ok and word.got.ok


def test_a_failing_job_is_a_value_and_the_others_still_answer() -> None:
    def broken() -> int:
        raise FileNotFoundError(2, "No such file", "/srv/missing")

    gathering = Gathering(timeout_s=5)
    failed = gathering.add("broken", broken)
    fine = gathering.add("fine", lambda: 7)
    gathering.run()
    assert not failed.got.ok and failed.got.value is None
    assert "No such file" in (failed.got.error or "")
    assert not failed.got.timed_out
    assert fine.got.value == 7


def test_a_hung_job_times_out_as_a_value_without_holding_up_the_rest(
        hang: threading.Event) -> None:
    events: list[ProgressEvent] = []
    gathering = Gathering(timeout_s=0.3)
    stuck = gathering.add("statvfs", hang.wait)
    fine = gathering.add("memory", lambda: "ok")
    started = time.monotonic()
    gathering.run(events.append)
    assert time.monotonic() - started < 2
    assert stuck.got.timed_out and not stuck.got.ok
    assert stuck.got.error == "no answer within 0.3 s"
    assert fine.got.value == "ok"
    assert [e.message for e in events] == ["gave up on statvfs after 0.3 s"]


def test_a_late_answer_after_the_time_out_does_not_replace_it(hang: threading.Event) -> None:
    answered = threading.Event()

    def slow() -> str:
        hang.wait()
        answered.set()
        return "late"

    gathering = Gathering(timeout_s=0.2)
    job = gathering.add("slow", slow)
    gathering.run()
    hang.set()
    assert answered.wait(5)
    assert job.got.timed_out and job.got.value is None


def test_timed_out_jobs_free_their_worker_for_the_ones_waiting(hang: threading.Event) -> None:
    # Two workers, two hung jobs first: the third must still run once they are given up.
    gathering = Gathering(timeout_s=0.3, workers=2)
    first = gathering.add("first", hang.wait)
    second = gathering.add("second", hang.wait)
    third = gathering.add("third", lambda: "ran")
    started = time.monotonic()
    gathering.run()
    assert time.monotonic() - started < 3
    assert first.got.timed_out and second.got.timed_out
    assert third.got.value == "ran"


def test_a_job_may_carry_its_own_deadline_and_reason(hang: threading.Event) -> None:
    gathering = Gathering(timeout_s=30, describe=lambda error: f"skipped: {error}")
    quick = gathering.add("quick", hang.wait, timeout_s=0.2)
    failed = gathering.add("failed", lambda: int("x"))
    started = time.monotonic()
    gathering.run()
    assert time.monotonic() - started < 3
    assert quick.got.error == "no answer within 0.2 s"
    assert (failed.got.error or "").startswith("skipped: invalid literal")


def test_reading_a_job_before_the_gathering_ran_says_so() -> None:
    job = Gathering(timeout_s=1).add("early", lambda: 1)
    with pytest.raises(RuntimeError, match="has not run"):
        _ = job.got


def test_at_most_workers_jobs_run_at_once() -> None:
    lock = threading.Lock()
    running = [0]
    peak = [0]

    def job() -> None:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05)  # the work itself: overlap is what is measured, not a wait to start
        with lock:
            running[0] -= 1

    gathering = Gathering(timeout_s=5, workers=2)
    jobs = [gathering.add(f"job{index}", job) for index in range(6)]
    gathering.run()
    assert all(j.got.ok for j in jobs)
    assert peak[0] == 2
