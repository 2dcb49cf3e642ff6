from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support.clock import FakeClock
from vmkeeper import flock
from vmkeeper.errors import LockHeld


def test_the_file_names_the_holder_and_its_fields(tmp_path: Path) -> None:
    path = tmp_path / "state" / "x.lock"
    with flock.hold(path, "deploy", extra={"branch": "main", "sha": None}) as held:
        held.update(sha="f" * 40)
        holder = flock.read_holder(path)
        assert holder is not None
        assert (holder.pid, holder.what) == (os.getpid(), "deploy")
        assert holder.since.endswith("Z")
        assert dict(holder.extra) == {"branch": "main", "sha": "f" * 40}
        assert holder == held.holder
    assert flock.read_holder(path) is None  # released: the file names no one


def test_a_second_taker_is_refused_with_who_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "service.lock"
    refusal = flock.Refusal("Another media service already runs", "stop it first.")
    with (flock.hold(path, "media service", extra={"store": "/srv/jobs"}),
          pytest.raises(LockHeld) as raised):
        flock.take(path, "media service", refusal=refusal)
    message = str(raised.value)
    assert message.startswith(f"Another media service already runs (pid {os.getpid()}, "
                              "media service since ")
    assert "store /srv/jobs" in message and message.endswith(": stop it first.")
    assert "waiting" not in message


def test_waiting_polls_until_the_deadline_then_refuses(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "deploy.lock"
    with flock.hold(path, "deploy"), pytest.raises(LockHeld, match="after waiting 1 s"):
        flock.take(path, "rollback", wait_s=1, sleep=clock.sleep, clock=clock)
    assert 1 <= sum(clock.slept) < 1.5 and set(clock.slept) == {0.2}


def test_waiting_takes_the_lock_once_the_holder_lets_go(tmp_path: Path) -> None:
    clock = FakeClock()
    path = tmp_path / "deploy.lock"
    first = flock.take(path, "deploy")

    def sleep(seconds: float) -> None:
        first.release()  # the holder finishes while the second caller waits
        clock.sleep(seconds)

    second = flock.take(path, "rollback", wait_s=30, sleep=sleep, clock=clock)
    try:
        assert second.holder.what == "rollback"
        assert clock.slept == [0.2]
    finally:
        second.release()


def test_a_lock_file_with_garbage_names_no_holder(tmp_path: Path) -> None:
    path = tmp_path / "x.lock"
    path.write_text("{not json")
    assert flock.read_holder(path) is None
    with flock.hold(path, "deploy") as held:
        assert flock.read_holder(path) == held.holder


def test_a_holder_killed_minus_9_leaves_its_name_but_not_the_lock(tmp_path: Path) -> None:
    import signal
    import sys

    from tests.support.waiting import wait_for
    from vmkeeper import proc

    path = tmp_path / "deploy.lock"
    code = ("import sys, time; from pathlib import Path; from vmkeeper import flock; "
            f"flock.take(Path({str(path)!r}), 'deploy', extra={{'sha': 'abc'}}); "
            "print('held', flush=True); time.sleep(600)")
    with proc.start([sys.executable, "-c", code], timeout=60) as child:
        assert child.stdout is not None and child.stdout.readline() == b"held\n"
        holder = flock.live_holder(path)
        assert holder is not None and (holder.pid, holder.what) == (child.pid, "deploy")
        os.kill(child.pid, signal.SIGKILL)
        wait_for(lambda: child.poll() is not None, 10, "the holder to die")
    stale = flock.read_holder(path)
    assert stale is not None and stale.pid == child.pid  # the text survives the -9 ...
    assert flock.live_holder(path) is None  # ... the lock does not
    with flock.hold(path, "rollback") as held:  # and the next taker gets it at once
        assert flock.live_holder(path) == held.holder


def test_no_lock_file_is_no_holder(tmp_path: Path) -> None:
    assert flock.live_holder(tmp_path / "never.lock") is None
