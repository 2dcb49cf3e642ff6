from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from vmkeeper.agent.store import IdempotencyMismatch, OperationNotFound, OpState, Store


def test_the_same_idempotency_key_returns_the_same_operation(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first = store.create("deploy", {"branch": "main"}, key="k1")
    again = store.create("deploy", {"branch": "main"}, key="k1")
    assert first.new and not again.new and again.operation.id == first.operation.id
    with pytest.raises(IdempotencyMismatch):
        store.create("deploy", {"branch": "dev"}, key="k1")


def test_deploys_coalesce_into_one_queued_follow_up_with_the_newest_body(tmp_path: Path) -> None:
    store = Store(tmp_path)
    running = store.create("deploy", {"sha": "a"}, coalesce=True).operation
    store.start(running.id, 1)
    follow = store.create("deploy", {"sha": "b"}, coalesce=True)
    later = store.create("deploy", {"sha": "c"}, coalesce=True)
    assert follow.new and not later.new and later.operation.id == follow.operation.id
    assert store.get(follow.operation.id).body == {"sha": "c"}
    assert store.next_queued() == store.get(follow.operation.id)


def test_events_resume_after_the_last_seen_number(tmp_path: Path) -> None:
    store = Store(tmp_path)
    op = store.create("recover", {}).operation
    for n in range(5):
        store.add_event(op.id, {"message": f"line {n}"})
    seen = [seq for seq, _event in store.events_after(op.id, 2)]
    assert seen == [3, 4, 5]


def test_the_reaper_fails_operations_a_killed_agent_left_running(tmp_path: Path) -> None:
    store = Store(tmp_path)
    op = store.create("deploy", {"branch": "main"}).operation
    store.start(op.id, 999_999)
    store.add_event(op.id, {"message": "build started"})
    kept = store.create("deploy", {"branch": "x"}).operation
    store.start(kept.id, 4242)
    reaped = Store(tmp_path).reap(alive={4242})
    assert [r.id for r in reaped] == [op.id]
    closed = store.get(op.id)
    assert closed.state is OpState.FAILED and "build started" in (closed.error or "")
    assert store.get(kept.id).state is OpState.RUNNING
    assert list(store.events_after(op.id))[-1][1]["type"] == "result"


def test_finishing_appends_the_result_event_once_in_the_same_transaction(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The events stream ends when it sees the operation finished, so the result event must be
    there by then: CI once saw a stream end between the two writes."""
    store = Store(tmp_path)
    op = store.create("deploy", {}).operation
    store.start(op.id, 1)

    def broken(*_args: object) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    with monkeypatch.context() as patch:
        patch.setattr(Store, "_append", staticmethod(broken))
        with pytest.raises(sqlite3.OperationalError):
            store.finish(op.id, OpState.FAILED, error="exit code 1")
    assert store.get(op.id).state is OpState.RUNNING  # the update was rolled back with it
    assert store.finish(op.id, OpState.FAILED, {"ok": False}, "exit code 1", exit_code=1)
    assert store.get(op.id).state is OpState.FAILED
    events = [event for _seq, event in store.events_after(op.id)]
    assert events == [{"type": "result", "ok": False, "exit_code": 1, "state": "failed",
                       "result": {"ok": False}, "error": "exit code 1"}]
    assert store.finish(op.id, OpState.SUCCEEDED) is False
    assert len(list(store.events_after(op.id))) == 1


def test_a_close_from_queued_does_not_close_what_the_runner_has_claimed(
        tmp_path: Path) -> None:
    """A queued cancel closes only a queued operation: one the runner claimed meanwhile runs on
    and is closed by the runner, with its real result."""
    store = Store(tmp_path)
    op = store.create("recover", {}).operation
    store.claim(op.id)
    assert not store.finish(op.id, OpState.CANCELLED, was=OpState.QUEUED)
    assert store.get(op.id).state is OpState.RUNNING and not list(store.events_after(op.id))
    assert store.finish(op.id, OpState.SUCCEEDED, was=OpState.RUNNING)


def test_deliveries_are_seen_once_and_unknown_ids_are_refused(tmp_path: Path) -> None:
    store = Store(tmp_path)
    assert store.first_delivery("d1") and not store.first_delivery("d1")
    with pytest.raises(OperationNotFound):
        store.get("nope")
