"""The durable job store: SQLite in WAL mode, so killing the service loses no job.

One row per job. A partial unique index allows one *active* (queued or running) job per storage
key, so deduplication holds even if two submits race past the application's own check. A job
that was running when the service died is put back in the queue on start (with its attempt
count, up to a limit); the process it ran in is recorded so the restart can kill what is left of
it first and never run one key twice at once.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from vmkeeper.media.breaker import BreakerMemo, BreakerState

Clock = Callable[[], float]

# Every connection waits this long for a lock another thread or process holds before failing.
_BUSY_TIMEOUT_S = 10.0


class JobState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"  # a media failure: crash, timeout, memory limit, attempts exhausted
    REJECTED = "rejected"  # the input was refused by the limits: the caller's error

    @property
    def finished(self) -> bool:
        return self in (JobState.DONE, JobState.FAILED, JobState.REJECTED)


@dataclass(frozen=True)
class Job:
    id: str
    key: str
    state: JobState
    attempts: int
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    output: str | None = None
    error: str | None = None
    reason: str | None = None  # "memory limit", "timeout", "crash", "media error", "rejected"…
    cached: bool = False  # answered from an up-to-date output, nothing ran
    details: dict[str, Any] = field(default_factory=dict)  # probe, sizes, seconds, peak memory
    seq: int = 0

    @property
    def seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(frozen=True)
class Submitted:
    job: Job
    created: bool  # False: an active job for the key already existed (deduplicated)


@dataclass(frozen=True)
class WorkerMark:
    """Where a running job's process lives, to kill its remains after a crash of the service."""

    pid: int | None
    create_time: float | None
    cgroup: str | None


_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    key TEXT NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    output TEXT,
    error TEXT,
    reason TEXT,
    cached INTEGER NOT NULL DEFAULT 0,
    details TEXT NOT NULL DEFAULT '{}',
    worker_pid INTEGER,
    worker_create_time REAL,
    worker_cgroup TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_job_per_key
    ON jobs(key) WHERE state IN ('queued', 'running');
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(state, seq);
CREATE TABLE IF NOT EXISTS breaker (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    state TEXT NOT NULL,
    consecutive_failures INTEGER NOT NULL,
    trial_successes INTEGER NOT NULL,
    opened_at REAL
);
"""

_COLUMNS = ("seq, id, key, state, attempts, created_at, started_at, finished_at, output, error, "
            "reason, cached, details")


def _job(row: sqlite3.Row) -> Job:
    return Job(
        id=row["id"], key=row["key"], state=JobState(row["state"]), attempts=row["attempts"],
        created_at=row["created_at"], started_at=row["started_at"],
        finished_at=row["finished_at"], output=row["output"], error=row["error"],
        reason=row["reason"], cached=bool(row["cached"]), details=json.loads(row["details"]),
        seq=row["seq"],
    )


class JobStore:
    """One connection shared by the service's threads behind a lock; WAL for crash safety."""

    def __init__(self, path: Path, clock: Clock) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        # 0600: jobs name uploads and errors. SQLite gives its -wal and -shm files the mode of
        # the database file, so creating that one private is enough (chmod: older stores).
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600))
        os.chmod(path, 0o600)
        self.path = path
        self._clock = clock
        self._lock = threading.RLock()
        self._db = sqlite3.connect(path, timeout=_BUSY_TIMEOUT_S, check_same_thread=False,
                                   isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        # FULL: a job acknowledged with 202 survives even a power cut, not only a killed process.
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _select(self, where: str, params: tuple[Any, ...] = ()) -> list[Job]:
        with self._lock:
            rows = self._db.execute(f"SELECT {_COLUMNS} FROM jobs {where}", params).fetchall()
        return [_job(row) for row in rows]

    def get(self, job_id: str) -> Job | None:
        found = self._select("WHERE id = ?", (job_id,))
        return found[0] if found else None

    def active_for(self, key: str) -> Job | None:
        found = self._select("WHERE key = ? AND state IN ('queued', 'running')", (key,))
        return found[0] if found else None

    def latest_done(self, key: str) -> Job | None:
        found = self._select("WHERE key = ? AND state = 'done' ORDER BY seq DESC LIMIT 1", (key,))
        return found[0] if found else None

    def select(self, state: JobState | None = None, limit: int = 100) -> list[Job]:
        if state is None:
            return self._select("ORDER BY seq DESC LIMIT ?", (limit,))
        order = "ASC" if state is JobState.QUEUED else "DESC"  # the queue in the order it runs
        return self._select(f"WHERE state = ? ORDER BY seq {order} LIMIT ?", (state.value, limit))

    def position(self, job: Job) -> int | None:
        """1 for the next job to run; None unless queued."""
        if job.state is not JobState.QUEUED:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT COUNT(*) FROM jobs WHERE state = 'queued' AND seq <= ?", (job.seq,)
            ).fetchone()
        return int(row[0])

    def counts(self) -> dict[JobState, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        found = {JobState(state): count for state, count in rows}
        return {state: found.get(state, 0) for state in JobState}

    def finished_seconds(self) -> list[float]:
        with self._lock:
            rows = self._db.execute(
                "SELECT finished_at - started_at FROM jobs WHERE state IN ('done', 'failed', "
                "'rejected') AND started_at IS NOT NULL AND cached = 0"
            ).fetchall()
        return [float(row[0]) for row in rows]

    def submit(self, key: str) -> Submitted:
        """Queue a job for ``key``, or return the queued or running one (deduplicated)."""
        with self._transaction() as db:
            existing = self.active_for(key)
            if existing is not None:
                return Submitted(existing, created=False)
            job_id = uuid.uuid4().hex[:16]
            db.execute("INSERT INTO jobs (id, key, state, created_at) VALUES (?, ?, 'queued', ?)",
                       (job_id, key, self._clock()))
            return Submitted(self._inserted(job_id), created=True)

    def record_cached(self, key: str, output: str, details: dict[str, Any]) -> Job:
        """A finished job for an output that is already up to date: nothing runs.

        It replaces the key's previous cached answer — one row per key, however often it is
        asked — under the same id, so every asker's id stays answerable (concurrent askers used
        to get a 500 when the next one deleted the row before it was read back, and the earlier
        ids a 404), and as the newest row (a new ``seq``).
        """
        now = self._clock()
        with self._transaction() as db:
            previous = db.execute("SELECT id FROM jobs WHERE key = ? AND cached = 1 "
                                  "ORDER BY seq DESC LIMIT 1", (key,)).fetchone()
            job_id = previous["id"] if previous else uuid.uuid4().hex[:16]
            db.execute("DELETE FROM jobs WHERE key = ? AND cached = 1", (key,))
            db.execute(
                "INSERT INTO jobs (id, key, state, created_at, started_at, finished_at, output, "
                "cached, details) VALUES (?, ?, 'done', ?, ?, ?, ?, 1, ?)",
                (job_id, key, now, now, now, output, json.dumps(details)),
            )
            return self._inserted(job_id)

    def _inserted(self, job_id: str) -> Job:
        """The row just written, read in the same transaction (no other writer in between)."""
        job = self.get(job_id)
        assert job is not None, job_id
        return job

    def claim_next(self) -> Job | None:
        """Mark the oldest queued job running (one more attempt) and return it."""
        with self._transaction() as db:
            row = db.execute(
                "SELECT id FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1").fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE jobs SET state = 'running', attempts = attempts + 1, started_at = ?, "
                "worker_pid = NULL, worker_create_time = NULL, worker_cgroup = NULL WHERE id = ?",
                (self._clock(), row["id"]),
            )
        return self.get(row["id"])

    def mark_worker(self, job_id: str, mark: WorkerMark) -> None:
        with self._transaction() as db:
            db.execute("UPDATE jobs SET worker_pid = ?, worker_create_time = ?, worker_cgroup = ? "
                       "WHERE id = ?", (mark.pid, mark.create_time, mark.cgroup, job_id))

    def finish(self, job_id: str, state: JobState, *, output: str | None = None,
               error: str | None = None, reason: str | None = None,
               details: dict[str, Any] | None = None) -> Job:
        with self._transaction() as db:
            db.execute(
                "UPDATE jobs SET state = ?, finished_at = ?, output = ?, error = ?, reason = ?, "
                "details = ?, worker_pid = NULL, worker_create_time = NULL, worker_cgroup = NULL "
                "WHERE id = ?",
                (state.value, self._clock(), output, error, reason, json.dumps(details or {}),
                 job_id),
            )
        job = self.get(job_id)
        assert job is not None
        return job

    def requeue(self, job_id: str, *, refund: bool = False) -> Job:
        """Back in the queue at its old place; ``refund``: the stop was ours, not the job's."""
        with self._transaction() as db:
            db.execute("UPDATE jobs SET state = 'queued', started_at = NULL, worker_pid = NULL, "
                       "worker_create_time = NULL, worker_cgroup = NULL, "
                       "attempts = attempts - ? WHERE id = ?", (int(refund), job_id))
        job = self.get(job_id)
        assert job is not None
        return job

    def interrupted(self) -> list[tuple[Job, WorkerMark]]:
        """Jobs left 'running' by a service that died, with where their process was."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS}, worker_pid, worker_create_time, worker_cgroup FROM jobs "
                "WHERE state = 'running' ORDER BY seq").fetchall()
        return [(_job(row), WorkerMark(row["worker_pid"], row["worker_create_time"],
                                       row["worker_cgroup"])) for row in rows]

    def load_breaker(self) -> BreakerMemo | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM breaker WHERE id = 1").fetchone()
        if row is None:
            return None
        return BreakerMemo(BreakerState(row["state"]), row["consecutive_failures"],
                           row["trial_successes"], row["opened_at"])

    def save_breaker(self, memo: BreakerMemo) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO breaker (id, state, consecutive_failures, trial_successes, opened_at)"
                " VALUES (1, ?, ?, ?, ?) ON CONFLICT(id) DO UPDATE SET state = excluded.state, "
                "consecutive_failures = excluded.consecutive_failures, "
                "trial_successes = excluded.trial_successes, opened_at = excluded.opened_at",
                (memo.state.value, memo.consecutive_failures, memo.trial_successes,
                 memo.opened_at),
            )
