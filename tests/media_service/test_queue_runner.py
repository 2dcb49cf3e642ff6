"""Submit, dedup, cached outputs, the breaker at the door and in the runner, recovery, logs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmkeeper.media.breaker import BreakerState
from vmkeeper.media.jobqueue import BreakerRefused, Disposition, SourceMissing
from vmkeeper.media.jobs import JobState, WorkerMark
from vmkeeper.media.runner import Reason

from .fakes import MEDIA_FAILURE, REJECTED, scripted_queue
from .helpers import FakeClock, settings_for


def _sources(tmp_path: Path, *names: str) -> None:
    for name in names:
        path = tmp_path / "uploads" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"video")


def test_duplicate_submissions_share_one_job_and_one_run(tmp_path: Path) -> None:
    _sources(tmp_path, "a.mp4")
    queue, executor, _ = scripted_queue(settings_for(tmp_path))
    views = [queue.submit("a.mp4") for _ in range(5)]
    assert {v.job.id for v in views} == {views[0].job.id}
    assert [v.disposition for v in views[1:]] == [Disposition.DEDUPLICATED] * 4
    while queue.runner.run_once():
        pass
    assert executor.runs == ["a.mp4"]


def test_an_output_newer_than_its_source_is_answered_without_running(tmp_path: Path) -> None:
    _sources(tmp_path, "a.mp4")
    queue, executor, _ = scripted_queue(settings_for(tmp_path))
    queue.submit("a.mp4")
    queue.runner.run_once()
    cached = queue.submit("a.mp4")
    assert cached.disposition is Disposition.CACHED and cached.job.state is JobState.DONE
    forced = queue.submit("a.mp4", force=True)
    assert forced.disposition is Disposition.QUEUED
    assert len(executor.runs) == 1


def test_a_missing_source_is_refused_before_queueing(tmp_path: Path) -> None:
    queue, _, _ = scripted_queue(settings_for(tmp_path))
    with pytest.raises(SourceMissing):
        queue.submit("nope.mp4")
    assert queue.jobs() == []


def test_media_failures_open_the_breaker_and_rejections_do_not(tmp_path: Path) -> None:
    names = ["bad1.mp4", "bad2.mp4", "long.mp4", "bad3.mp4", "good.mp4"]
    _sources(tmp_path, *names)
    clock = FakeClock()
    settings = settings_for(tmp_path, breaker={"failure_threshold": 3, "cooldown_ms": 30_000})
    queue, executor, _ = scripted_queue(settings, clock)
    for name in ("bad1.mp4", "bad2.mp4", "bad3.mp4"):
        executor.outcomes[name] = MEDIA_FAILURE
    executor.outcomes["long.mp4"] = REJECTED
    for name in names[:4]:
        queue.submit(name)
        queue.runner.run_once()
    assert queue.breaker.status().state is BreakerState.OPEN
    with pytest.raises(BreakerRefused) as refused:
        queue.submit("good.mp4")
    assert refused.value.retry_after_s == 30
    clock.advance(30)
    queue.submit("good.mp4")
    job = queue.runner.run_once()
    assert job is not None and job.state is JobState.DONE
    assert queue.breaker.status().state is BreakerState.CLOSED


def test_queued_jobs_wait_while_the_breaker_is_open(tmp_path: Path) -> None:
    _sources(tmp_path, "bad.mp4", "next.mp4")
    clock = FakeClock()
    queue, executor, _ = scripted_queue(
        settings_for(tmp_path, breaker={"failure_threshold": 1, "cooldown_ms": 10_000}), clock)
    executor.outcomes["bad.mp4"] = MEDIA_FAILURE
    queue.submit("bad.mp4")
    queue.submit("next.mp4")
    assert queue.runner.run_once() is not None
    assert queue.runner.run_once() is None, "no launch while open"
    assert queue.store.get(queue.jobs(JobState.QUEUED)[0].job.id).state is JobState.QUEUED  # type: ignore[union-attr]
    clock.advance(10)
    assert queue.runner.run_once() is not None
    assert executor.runs == ["bad.mp4", "next.mp4"]


def test_recovery_requeues_running_jobs_until_the_attempt_limit(tmp_path: Path) -> None:
    _sources(tmp_path, "a.mp4", "b.mp4")
    settings = settings_for(tmp_path, max_attempts=2)
    queue, _, records = scripted_queue(settings)
    a = queue.submit("a.mp4").job
    queue.store.claim_next()  # the service "dies" with a running
    queue.runner.recover()
    assert queue.store.get(a.id).state is JobState.QUEUED  # type: ignore[union-attr]
    queue.store.claim_next()  # and dies again: attempt 2 of 2
    [job] = queue.runner.recover()
    assert job.state is JobState.FAILED and job.reason == Reason.ATTEMPTS
    assert any(r.get("recovered") for r in records.records)


def test_recovery_finishes_a_job_whose_orphan_completed_the_output(tmp_path: Path) -> None:
    _sources(tmp_path, "a.mp4")
    queue, executor, _ = scripted_queue(settings_for(tmp_path))
    a = queue.submit("a.mp4").job
    queue.store.claim_next()
    queue.store.mark_worker(a.id, WorkerMark(None, None, None))
    out = tmp_path / "uploads" / "reversed" / "a.mp4"
    out.parent.mkdir(parents=True)
    out.write_bytes(b"done")
    [job] = queue.runner.recover()
    assert job.state is JobState.DONE and executor.runs == []


def test_every_state_change_is_one_json_record(tmp_path: Path) -> None:
    _sources(tmp_path, "a.mp4")
    queue, _, records = scripted_queue(settings_for(tmp_path))
    job = queue.submit("a.mp4").job
    queue.runner.run_once()
    assert records.states(job.id) == ["queued", "running", "done"]
    last = records.records[-1]
    for field in ("key", "job_id", "attempt", "input_size_bytes", "output_size_bytes", "input",
                  "seconds", "peak_memory_bytes", "reason"):
        assert field in last
    json.dumps(records.records)
