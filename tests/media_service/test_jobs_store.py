"""The SQLite job store: dedup per key, queue order, attempts, recovery marks, WAL."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vmkeeper.media.breaker import BreakerMemo, BreakerState
from vmkeeper.media.jobs import JobState, JobStore, WorkerMark

from .helpers import FakeClock


@pytest.fixture
def store(tmp_path: Path) -> JobStore:
    return JobStore(tmp_path / "jobs.sqlite3", FakeClock())


def test_store_uses_wal_journal(store: JobStore) -> None:
    with sqlite3.connect(store.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_submit_returns_the_active_job_for_the_same_key(store: JobStore) -> None:
    first = store.submit("a.mp4")
    second = store.submit("a.mp4")
    assert first.created and not second.created
    assert second.job.id == first.job.id
    assert store.submit("b.mp4").created


def test_the_database_itself_refuses_two_active_jobs_for_one_key(store: JobStore) -> None:
    store.submit("a.mp4")
    with sqlite3.connect(store.path) as db, pytest.raises(sqlite3.IntegrityError):
        db.execute("INSERT INTO jobs (id, key, state, created_at) VALUES ('x', 'a.mp4', "
                   "'queued', 0)")


def test_claims_run_in_submission_order_with_positions(store: JobStore) -> None:
    ids = [store.submit(f"{n}.mp4").job.id for n in range(3)]
    assert [store.position(store.get(i)) for i in ids] == [1, 2, 3]  # type: ignore[arg-type]
    claimed = store.claim_next()
    assert claimed is not None and claimed.id == ids[0]
    assert claimed.state is JobState.RUNNING and claimed.attempts == 1
    assert store.position(claimed) is None
    assert store.position(store.get(ids[1])) == 1  # type: ignore[arg-type]


def test_a_finished_key_can_be_submitted_again(store: JobStore) -> None:
    job = store.submit("a.mp4").job
    store.claim_next()
    store.finish(job.id, JobState.DONE, output="/x")
    assert store.submit("a.mp4").created


def test_interrupted_jobs_carry_their_worker_mark_and_requeue_keeps_place(
        store: JobStore) -> None:
    first = store.submit("a.mp4").job
    store.submit("b.mp4")
    store.claim_next()
    store.mark_worker(first.id, WorkerMark(1234, 5.0, "/sys/fs/cgroup/memory/x"))
    [(job, mark)] = store.interrupted()
    assert job.id == first.id and mark == WorkerMark(1234, 5.0, "/sys/fs/cgroup/memory/x")
    requeued = store.requeue(first.id)
    assert requeued.attempts == 1 and store.position(requeued) == 1
    assert store.requeue(store.claim_next().id, refund=True).attempts == 1  # type: ignore[union-attr]


def test_jobs_survive_reopening_the_store(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite3"
    store = JobStore(path, FakeClock())
    job = store.submit("a.mp4").job
    store.save_breaker(BreakerMemo(BreakerState.OPEN, 3, 0, 99.0))
    store.close()
    again = JobStore(path, FakeClock())
    assert again.get(job.id) is not None
    assert again.load_breaker() == BreakerMemo(BreakerState.OPEN, 3, 0, 99.0)
