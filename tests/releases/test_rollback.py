"""rollback in the fast tier: the fake PM2 world, a fake site and clock, real releases on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.world import FakeVm
from vmkeeper.releases import history, rollback, store


@pytest.fixture
def vm(tmp_path: Path) -> FakeVm:
    world = FakeVm.at(tmp_path)
    world.run_other_apps()
    return world


def _state(vm: FakeVm, release_id: str | None) -> store.ReleaseState | None:
    assert release_id is not None
    meta = store.read_meta(vm.settings.releases.root / release_id)
    return meta.state if meta else None


def test_rollback_to_the_previous_release_serves_it_and_saves_it(vm: FakeVm) -> None:
    older = vm.release("aaaaaaa")
    newer = vm.release("bbbbbbb", stamp="20260102T000000Z")
    vm.run_frontend(newer)
    result = rollback.rollback(vm.settings, previous=True, switcher=vm.switcher())
    assert result.ok and result.error is None
    assert result.active == result.target == older.release_id
    assert result.previous == newer.release_id and result.dump_agrees is True
    records = history.read(vm.settings.releases.root)
    assert [(r["phase"], r.get("result")) for r in records] == [("started", None),
                                                                 ("finished", "ok")]


def test_a_target_that_never_answers_and_a_revert_that_fails_still_finish_the_run(
        vm: FakeVm) -> None:
    older = vm.release("aaaaaaa")
    newer = vm.release("bbbbbbb", stamp="20260102T000000Z")
    vm.run_frontend(newer)
    vm.hangs.add(older.app_dir)                 # the target never answers
    vm.pm2_state.fail_start.add(newer.app_dir)  # and going back to the live one fails too
    dump_before = vm.pm2_state.dump_path.read_text()
    result = rollback.rollback(vm.settings, older.release_id, switcher=vm.switcher())
    assert not result.ok and result.reverted
    assert result.error is not None
    assert f"Release {older.release_id} did not answer 200" in result.error
    assert "REVERT FAILED" in result.error and str(newer.release_id) in result.error
    finished = history.read(vm.settings.releases.root)[-1]
    assert finished["phase"] == "finished" and finished["result"] == "reverted"
    assert finished["error"] == result.error
    assert history.unfinished(vm.settings.releases.root) == []
    # The dump was saved after the failed revert: it is what PM2 runs now, not the old dump.
    assert vm.pm2_state.dump_path.read_text() != dump_before
    assert [e["name"] for e in vm.pm2_state.dump()] == list(vm.pm2_state.apps)
    assert _state(vm, older.release_id) is store.ReleaseState.FAILED


def test_a_target_that_never_answers_is_reverted_and_the_live_release_kept(vm: FakeVm) -> None:
    older = vm.release("aaaaaaa")
    newer = vm.release("bbbbbbb", stamp="20260102T000000Z")
    vm.run_frontend(newer)
    vm.hangs.add(older.app_dir)
    result = rollback.rollback(vm.settings, previous=True, switcher=vm.switcher())
    assert not result.ok and result.active == newer.release_id
    assert result.error is not None and f"reverted: {newer.release_id} is serving again" \
        in result.error
    assert result.dump_agrees is True and history.read(vm.settings.releases.root)[-1][
        "result"] == "reverted"
    assert _state(vm, older.release_id) is store.ReleaseState.FAILED
    assert _state(vm, newer.release_id) is store.ReleaseState.GOOD


def test_a_failing_pm2_save_fails_the_rollback_but_it_still_finishes(vm: FakeVm) -> None:
    older = vm.release("aaaaaaa")
    vm.run_frontend(vm.release("bbbbbbb", stamp="20260102T000000Z"))
    vm.pm2_state.fail_save = True
    result = rollback.rollback(vm.settings, previous=True, switcher=vm.switcher())
    assert not result.ok and result.active == older.release_id
    assert result.error is not None and "pm2 save failed" in result.error
    assert history.read(vm.settings.releases.root)[-1]["phase"] == "finished"
