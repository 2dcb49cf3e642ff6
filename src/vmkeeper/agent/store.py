"""Durable operations: one SQLite file, written before any side effect happens.

A mutation (deploy, rollback, recover) is a row first and a process second, so a killed agent
leaves a row the reaper can close with evidence, never an operation "in progress" forever
(Coolify's stuck deployments). Each row's events (steps, output lines, the result) are rows
too, numbered per operation: the SSE stream resumes from ``Last-Event-ID`` with no gap and no
duplicate because the number is the primary key. WAL mode lets readers stream while the
runner writes.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from vmkeeper.errors import InputError
from vmkeeper.logrecord import timestamp

DB_FILE = "agent.sqlite3"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS operations (
  id TEXT PRIMARY KEY, kind TEXT NOT NULL, state TEXT NOT NULL, body TEXT NOT NULL,
  idem_key TEXT UNIQUE, body_sha TEXT NOT NULL, who TEXT, request_id TEXT,
  created_at TEXT NOT NULL, started_at TEXT, finished_at TEXT, pid INTEGER,
  result TEXT, error TEXT);
CREATE TABLE IF NOT EXISTS events (
  operation_id TEXT NOT NULL, seq INTEGER NOT NULL, data TEXT NOT NULL,
  PRIMARY KEY (operation_id, seq));
CREATE TABLE IF NOT EXISTS deliveries (id TEXT PRIMARY KEY, at TEXT NOT NULL);
"""


class OpState(str, Enum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def finished(self) -> bool:
        return self in (OpState.SUCCEEDED, OpState.FAILED, OpState.CANCELLED)


class IdempotencyMismatch(InputError):
    """The Idempotency-Key was used before with another body (→ 422)."""


class OperationNotFound(InputError):
    """No operation has that id (→ 404)."""


@dataclass(frozen=True)
class Operation:
    id: str
    kind: str  # deploy, rollback, recover
    state: OpState
    body: dict[str, Any]
    who: str | None
    request_id: str | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    pid: int | None
    result: dict[str, Any] | None
    error: str | None
    idempotency_key: str | None = None


@dataclass(frozen=True)
class Created:
    operation: Operation
    new: bool  # False: an Idempotency-Key retry, or a deploy coalesced into the queued one


def _sha(kind: str, body: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps([kind, body], sort_keys=True).encode()).hexdigest()


class Store:
    def __init__(self, state_dir: Path) -> None:
        state_dir.mkdir(parents=True, exist_ok=True)
        self.path = state_dir / DB_FILE
        # One connection per call: the server's threads and the runner share nothing but the file.
        with self._db() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)
        os.chmod(self.path, 0o600)

    def _db(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def create(self, kind: str, body: dict[str, Any], *, key: str | None = None,
               who: str | None = None, request_id: str | None = None,
               coalesce: bool = False) -> Created:
        """A new queued operation, or the one ``key`` names (same body), or — ``coalesce`` — the
        queued one of this kind, its body replaced by the newest (coalesce-latest)."""
        sha = _sha(kind, body)
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            if key is not None:
                row = db.execute("SELECT * FROM operations WHERE idem_key=?", (key,)).fetchone()
                if row is not None:
                    if row["body_sha"] != sha:
                        raise IdempotencyMismatch(
                            "This Idempotency-Key was used for a different request; send the "
                            "same body again or use a new key.")
                    return Created(_operation(row), False)
            if coalesce:
                row = db.execute("SELECT * FROM operations WHERE kind=? AND state=? ORDER BY "
                                 "created_at LIMIT 1", (kind, OpState.QUEUED.value)).fetchone()
                if row is not None:
                    db.execute("UPDATE operations SET body=?, body_sha=? WHERE id=?",
                               (json.dumps(body), sha, row["id"]))
                    return Created(self._get(db, row["id"]), False)
            op_id = uuid.uuid4().hex
            db.execute("INSERT INTO operations (id, kind, state, body, idem_key, body_sha, who, "
                       "request_id, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                       (op_id, kind, OpState.QUEUED.value, json.dumps(body), key, sha, who,
                        request_id, timestamp()))
            return Created(self._get(db, op_id), True)

    def get(self, op_id: str) -> Operation:
        with self._db() as db:
            return self._get(db, op_id)

    def _get(self, db: sqlite3.Connection, op_id: str) -> Operation:
        row = db.execute("SELECT * FROM operations WHERE id=?", (op_id,)).fetchone()
        if row is None:
            raise OperationNotFound(f"No operation has the id {op_id!r}; the 202 answer of the "
                                    "request that started it names it.")
        return _operation(row)

    def next_queued(self) -> Operation | None:
        with self._db() as db:
            row = db.execute("SELECT * FROM operations WHERE state=? ORDER BY created_at LIMIT 1",
                             (OpState.QUEUED.value,)).fetchone()
            return _operation(row) if row else None

    def running(self) -> list[Operation]:
        with self._db() as db:
            rows = db.execute("SELECT * FROM operations WHERE state=?",
                              (OpState.RUNNING.value,)).fetchall()
            return [_operation(row) for row in rows]

    def claim(self, op_id: str) -> Operation | None:
        """Take a queued operation to run, as it is now (a coalesced deploy's newest body), or
        None when it is no longer queued (cancelled since the runner saw it)."""
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            if db.execute("UPDATE operations SET state=?, started_at=? WHERE id=? AND state=?",
                          (OpState.RUNNING.value, timestamp(), op_id,
                           OpState.QUEUED.value)).rowcount != 1:
                return None
            return _operation(db.execute("SELECT * FROM operations WHERE id=?",
                                         (op_id,)).fetchone())

    def start(self, op_id: str, pid: int) -> None:
        """Record the pid of the operation's process (claimed, or queued); never reopens a
        closed one."""
        with self._db() as db:
            db.execute("UPDATE operations SET state=?, started_at=COALESCE(started_at, ?), pid=? "
                       "WHERE id=? AND state IN (?, ?)",
                       (OpState.RUNNING.value, timestamp(), pid, op_id, OpState.QUEUED.value,
                        OpState.RUNNING.value))

    def finish(self, op_id: str, state: OpState, result: dict[str, Any] | None = None,
               error: str | None = None, *, was: OpState | None = None, **said: Any) -> bool:
        """Close the operation and append its ``result`` event in one transaction, so that no
        reader sees it finished without that event (the events stream ends on either). ``said``
        adds to the event (the exit code, the seconds). Only from the state ``was`` when given
        (a queued cancel must not close what the runner has just claimed). False when it was
        not closed."""
        event = {"type": "result", "ok": state is OpState.SUCCEEDED, **said,
                 "state": state.value, "result": result, "error": error}
        open_states = [was] if was is not None else [s for s in OpState if not s.finished]
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            closed = db.execute(
                "UPDATE operations SET state=?, finished_at=?, result=?, error=? WHERE "
                f"id=? AND state IN ({','.join('?' * len(open_states))})",
                (state.value, timestamp(), json.dumps(result) if result else None, error,
                 op_id, *(s.value for s in open_states))).rowcount == 1
            if closed:
                self._append(db, op_id, event)
            return closed

    def add_event(self, op_id: str, event: dict[str, Any]) -> int:
        with self._db() as db:
            db.execute("BEGIN IMMEDIATE")
            return self._append(db, op_id, event)

    @staticmethod
    def _append(db: sqlite3.Connection, op_id: str, event: dict[str, Any]) -> int:
        """The event's row, numbered after the operation's last; inside the caller's
        transaction."""
        seq = int(db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE "
                             "operation_id=?", (op_id,)).fetchone()[0])
        db.execute("INSERT INTO events VALUES (?,?,?)", (op_id, seq, json.dumps(event)))
        return seq

    def events_after(self, op_id: str, after: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
        with self._db() as db:
            rows = db.execute("SELECT seq, data FROM events WHERE operation_id=? AND seq>? "
                              "ORDER BY seq", (op_id, after)).fetchall()
        for row in rows:
            yield int(row["seq"]), json.loads(row["data"])

    def first_delivery(self, delivery: str) -> bool:
        """Record a webhook delivery id; False when it was seen before (a replay)."""
        with self._db() as db:
            try:
                db.execute("INSERT INTO deliveries VALUES (?,?)", (delivery, timestamp()))
            except sqlite3.IntegrityError:
                return False
            return True

    def reap(self, alive: set[int] | None = None) -> list[Operation]:
        """Close the operations a killed agent left running (their pid is gone), with evidence:
        who ran them, since when, and the last event they reported. Returns them."""
        reaped = []
        for op in self.running():
            if op.pid is not None and (alive is not None and op.pid in alive):
                continue
            last = list(self.events_after(op.id))[-1:]
            said = last[0][1].get("message", "") if last else "no event"
            evidence = (f"The agent stopped while this {op.kind} ran (its worker, pid {op.pid}, "
                        f"started {op.started_at}); its last event: {said!r}. Check "
                        "`vmkeeper status`.")
            if self.finish(op.id, OpState.FAILED, {"ok": False, "reaped": True}, evidence,
                           was=OpState.RUNNING):
                reaped.append(self.get(op.id))
        return reaped


def _operation(row: sqlite3.Row) -> Operation:
    return Operation(row["id"], row["kind"], OpState(row["state"]), json.loads(row["body"]),
                     row["who"], row["request_id"], row["created_at"], row["started_at"],
                     row["finished_at"], row["pid"],
                     json.loads(row["result"]) if row["result"] else None, row["error"],
                     row["idem_key"])
