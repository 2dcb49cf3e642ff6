"""Release ids and records, the deploy lock, the history log, and git's argv builders."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vmkeeper.adapters import git as git_adapter
from vmkeeper.errors import LockHeld
from vmkeeper.releases import history, lock, store


@pytest.mark.parametrize("hostile", [
    "../etc", "20260101T000000Z-abc1234/..", "a/b", "..", "20260101T000000Z-abc1234\\x",
    "20260101T000000Z-abc1234\0",
])
def test_release_ids_with_separators_or_dotdot_are_refused(hostile: str) -> None:
    with pytest.raises(store.BadReleaseId) as raised:
        store.parse_release_id(hostile)
    assert raised.value.exit_code == 2


def test_new_release_id_is_utc_stamp_and_12_char_sha() -> None:
    moment = datetime(2026, 6, 12, 3, 14, 15, tzinfo=UTC)
    release_id = store.new_release_id("0123456789abcdef0123", moment)
    assert release_id == "20260612T031415Z-0123456789ab"
    assert store.parse_release_id(release_id)[1] == "0123456789ab"


def test_list_releases_newest_first_ignoring_other_entries(tmp_path: Path) -> None:
    for name in ("20260101T000000Z-aaaaaaaaaaaa", "20260301T000000Z-bbbbbbbbbbbb",
                 "history.jsonl", ".trash-x", "notes"):
        (tmp_path / name).mkdir()
    assert [r.id for r in store.list_releases(tmp_path)] == [
        "20260301T000000Z-bbbbbbbbbbbb", "20260101T000000Z-aaaaaaaaaaaa"]


def test_meta_round_trip_and_state_change(tmp_path: Path) -> None:
    meta = store.ReleaseMeta("20260101T000000Z-aaaaaaaaaaaa", "a" * 40, "main",
                             store.ReleaseState.BUILDING)
    store.write_meta(tmp_path, meta)
    store.set_state(tmp_path, store.ReleaseState.GOOD, size_bytes=42)
    read = store.read_meta(tmp_path)
    assert read is not None and read.state is store.ReleaseState.GOOD and read.size_bytes == 42
    assert [p.name for p in tmp_path.iterdir()] == [store.MARKER]  # no temporary left


def test_remove_release_leaves_no_directory_and_refuses_bad_ids(tmp_path: Path) -> None:
    release = tmp_path / "20260101T000000Z-aaaaaaaaaaaa"
    (release / "frontend").mkdir(parents=True)
    store.remove_release(tmp_path, release.name)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(store.BadReleaseId):
        store.remove_release(tmp_path, "../x")


def _hold(root: str, ready: multiprocessing.synchronize.Event) -> None:  # type: ignore[name-defined]
    with lock.acquire(Path(root), "deploy", branch="main") as held:
        held.update(sha="f" * 40)
        ready.set()
        time.sleep(60)


def test_lock_refuses_a_second_holder_naming_the_first(tmp_path: Path) -> None:
    ready = multiprocessing.get_context("fork").Event()
    holder = multiprocessing.get_context("fork").Process(target=_hold, args=(str(tmp_path), ready))
    holder.start()
    try:
        assert ready.wait(10)
        with pytest.raises(LockHeld) as raised, lock.acquire(tmp_path, "rollback"):
            pass
        message = str(raised.value)
        assert f"pid {holder.pid}" in message and "branch main" in message
        assert "sha ffffffffffff" in message and "--wait" in message
    finally:
        assert holder.pid is not None
        os.kill(holder.pid, signal.SIGKILL)  # the kernel frees an flock when its holder dies
        holder.join()
    with lock.acquire(tmp_path, "deploy", wait_s=2) as held:
        assert held.holder.pid == os.getpid()


def test_lock_wait_gives_up_after_the_wait(tmp_path: Path) -> None:
    with lock.acquire(tmp_path, "deploy"):
        started = time.monotonic()
        with pytest.raises(LockHeld, match=r"after waiting 0\.5 s"), \
                lock.acquire(tmp_path, "deploy", wait_s=0.5):
            pass
        assert time.monotonic() - started >= 0.5


def test_history_appends_lines_and_finds_unfinished_runs(tmp_path: Path) -> None:
    history.append(tmp_path, {"run": "a", "phase": "started", "command": "deploy"})
    history.append(tmp_path, {"run": "a", "phase": "finished", "result": "ok"})
    history.append(tmp_path, {"run": "b", "phase": "started", "command": "deploy"})
    with history.history_path(tmp_path).open("a") as torn:
        torn.write('{"run": "c", "pha')  # power lost mid-line
    records = history.read(tmp_path)
    assert [r["run"] for r in records] == ["a", "a", "b"]
    assert all("time" in r and "who" in r for r in records)
    assert [r["run"] for r in history.unfinished(tmp_path)] == ["b"]


def test_git_argv_builders_fetch_and_fast_forward_only() -> None:
    repo = Path("/w")
    assert git_adapter.fetch_argv(repo, "origin", "main") == [
        "git", "-C", "/w", "fetch", "--no-tags", "--", "origin",
        "+refs/heads/main:refs/remotes/origin/main"]
    assert git_adapter.merge_ff_only_argv(repo, "origin", "main")[3:5] == ["merge", "--ff-only"]
    all_argv = [*git_adapter.fetch_argv(repo, "o", "b"), *git_adapter.switch_argv(repo, "b"),
                *git_adapter.merge_ff_only_argv(repo, "o", "b")]
    assert "reset" not in all_argv and "clean" not in all_argv


def test_git_parsers() -> None:
    assert git_adapter.parse_left_right("2\t3\n").diverged
    assert not git_adapter.parse_left_right("0\t3\n").diverged
    assert git_adapter.parse_dirty(" M frontend/app.js\nM  a b\n") == ["frontend/app.js", "a b"]
