"""The runner with a real worker child: its events and result reach the store and the audit
log; cancel kills the child's process group; the reaper closes what a dead agent left."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from vmkeeper.agent import audit, daemon
from vmkeeper.agent.runner import Runner
from vmkeeper.agent.store import OpState, Store
from vmkeeper.settings import Settings


def _runner(tmp_path: Path) -> tuple[Runner, Store]:
    flags = {"state_dir": str(tmp_path), "releases.root": str(tmp_path / "r"),
             "pm2.bin": str(tmp_path / "no-pm2")}
    settings = Settings.model_validate({"state_dir": tmp_path,
                                        "releases": {"root": tmp_path / "r"}})
    store = Store(tmp_path)
    return Runner(store, settings, tmp_path / "ops",
                  {"VMKEEPER_AGENT_FLAGS": json.dumps(flags)}), store


def test_a_failing_deploy_ends_with_its_one_sentence_a_result_event_and_an_audit_record(
        tmp_path: Path) -> None:
    runner, store = _runner(tmp_path)
    op = store.create("deploy", {"branch": "main"}, who="ci", request_id="r1").operation
    runner.run_one(op)
    done = store.get(op.id)
    assert done.state is OpState.FAILED and "was not found" in (done.error or "")
    events = [event for _seq, event in store.events_after(op.id)]
    assert events[0]["message"] == "deploy started" and events[-1]["type"] == "result"
    assert (tmp_path / "ops" / f"{op.id}.log").read_text().count("\n") == len(events) - 1
    record = json.loads((tmp_path / audit.AUDIT_FILE).read_text())
    assert record["who"] == "ci" and record["operation"] == op.id
    assert record["result"] == "failed" and audit.verify(tmp_path).ok


def test_the_reaper_kills_an_orphaned_operation_tree_and_fails_it(tmp_path: Path) -> None:
    store = Store(tmp_path)
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"],
                              start_new_session=True)
    op = store.create("deploy", {}).operation
    store.start(op.id, orphan.pid)
    assert daemon.reap(store) == 1
    assert orphan.wait(timeout=10) != 0
    assert store.get(op.id).state is OpState.FAILED
    assert os.getpid() not in [o.pid for o in store.running()]


def test_cancel_of_a_queued_operation_means_it_never_runs(tmp_path: Path) -> None:
    runner, store = _runner(tmp_path)
    op = store.create("recover", {}).operation
    answer = runner.cancel(op.id)
    assert answer["cancelled"] and store.get(op.id).state is OpState.CANCELLED
    assert store.next_queued() is None
    [(_seq, result)] = store.events_after(op.id)  # a waiting events stream ends on it
    assert result["type"] == "result" and result["state"] == "cancelled"


def test_an_operation_cancelled_after_the_runner_saw_it_never_runs(tmp_path: Path) -> None:
    runner, store = _runner(tmp_path)
    op = store.create("recover", {}).operation
    seen = store.next_queued()
    assert seen == op
    runner.cancel(op.id)
    runner.run_one(seen)  # the runner took it from the queue just before the cancel
    closed = store.get(op.id)
    assert closed.state is OpState.CANCELLED and closed.pid is None
    assert [event["type"] for _seq, event in store.events_after(op.id)] == ["result"]
    assert not (tmp_path / "ops" / f"{op.id}.log").exists()


def test_cancel_of_one_being_started_or_already_closed_says_which(tmp_path: Path) -> None:
    runner, store = _runner(tmp_path)
    op = store.create("recover", {}).operation
    store.claim(op.id)  # its process not started yet
    assert runner.cancel(op.id) == {"cancelled": False,
                                    "detail": "It is starting; cancel it again in a moment."}
    store.finish(op.id, OpState.SUCCEEDED)
    assert runner.cancel(op.id)["detail"] == "It has already succeeded."


def test_the_runner_runs_a_coalesced_deploy_with_the_body_it_has_when_taken(
        tmp_path: Path) -> None:
    store = Store(tmp_path)
    op = store.create("deploy", {"sha": "a"}, coalesce=True).operation
    store.create("deploy", {"sha": "b"}, coalesce=True)  # after the runner saw "a"
    taken = store.claim(op.id)
    assert taken is not None and taken.body == {"sha": "b"} and taken.state is OpState.RUNNING
    assert store.claim(op.id) is None  # once
    follow = store.create("deploy", {"sha": "c"}, coalesce=True)
    assert follow.new and follow.operation.id != op.id  # a running one is not rewritten


def test_cancel_before_the_switch_kills_the_tree_and_removes_the_half_built_release(
        tmp_path: Path) -> None:
    from vmkeeper import flock, proc
    from vmkeeper.releases.lock import LOCK_NAME

    runner, store = _runner(tmp_path)
    release = "20261201T221051Z-738d162aa97b"
    (tmp_path / "r" / release).mkdir(parents=True)
    op = store.create("deploy", {}).operation
    with proc.start([sys.executable, "-c", "import time; time.sleep(60)"], timeout=60) as child, \
            flock.hold(tmp_path / "r" / LOCK_NAME, "deploy", extra={"release": release}):
        store.start(op.id, child.pid)
        runner._current[op.id] = child
        answer = runner.cancel(op.id)
        assert child.poll() is not None
    assert answer["cancelled"] and answer["removed_release"] == release
    assert not (tmp_path / "r" / release).exists()


def test_cancel_after_the_switch_began_lets_it_finish_and_says_so(tmp_path: Path) -> None:
    from vmkeeper import proc

    runner, store = _runner(tmp_path)
    op = store.create("deploy", {}).operation
    with proc.start([sys.executable, "-c", "import time; time.sleep(60)"], timeout=60) as child:
        store.start(op.id, child.pid)
        runner._current[op.id] = child
        with open(os.devnull, "w") as log:
            runner._line(op.id, json.dumps({"message": "switch", "step": "switch"}), log)
        answer = runner.cancel(op.id)
        assert child.poll() is None
    assert not answer["cancelled"] and "switch" in answer["detail"]


def test_a_worker_s_output_line_is_an_output_event_redacted_and_never_a_switch(
        tmp_path: Path) -> None:
    import io

    from vmkeeper.jsonable import to_jsonable
    from vmkeeper.progress import Phase, ProgressEvent

    runner, store = _runner(tmp_path)
    op = store.create("deploy", {}).operation
    secret = "sk-testA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"
    for event in (ProgressEvent(f"npm warn OPENAI_API_KEY={secret}", Phase.OUTPUT, "install", 4),
                  ProgressEvent("switch to a new node version", Phase.OUTPUT, "build", 5),
                  ProgressEvent("npm run build", Phase.STARTED, "build", 5)):
        line = json.dumps(to_jsonable(event._asdict())) + "\n"
        runner._line(op.id, line, io.StringIO())
    events = [event for _seq, event in store.events_after(op.id)]
    assert [e["type"] for e in events] == ["output", "output", "step"]
    assert secret not in json.dumps(events) and events[0]["step"] == "install"
    assert op.id not in runner._switching  # an npm line saying "switch" is not the switch
