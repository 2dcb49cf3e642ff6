"""The one gated switch, driven in the fast tier against the fake PM2 world and a fake clock."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.fakes.world import FakeVm
from vmkeeper.adapters import http
from vmkeeper.releases import store
from vmkeeper.releases.activation import Target


@pytest.fixture
def vm(tmp_path: Path) -> FakeVm:
    world = FakeVm.at(tmp_path)
    world.run_other_apps()
    return world


def _state(vm: FakeVm, target: Target) -> store.ReleaseState | None:
    assert target.release_id is not None
    meta = store.read_meta(vm.settings.releases.root / target.release_id)
    return meta.state if meta else None


def _frontend_cwd(vm: FakeVm) -> Path | None:
    app = vm.pm2_state.apps.get("frontend-dev")
    return app.cwd if app is not None and app.online else None


def _dump_cwd(vm: FakeVm) -> str | None:
    return next((e["pm_cwd"] for e in vm.pm2_state.dump() if e["name"] == "frontend-dev"), None)


def test_a_release_that_answers_becomes_live_good_and_saved(vm: FakeVm) -> None:
    old, new = vm.release("aaaaaaa"), vm.release("bbbbbbb", stamp="20260102T000000Z")
    vm.run_frontend(old)
    outcome = vm.switcher().switch_to(new, old)
    assert outcome.serving and not outcome.reverted and outcome.failure is None
    assert _frontend_cwd(vm) == new.app_dir and _dump_cwd(vm) == str(new.app_dir)
    assert outcome.saved and outcome.dump_agrees is True
    assert _state(vm, new) is store.ReleaseState.GOOD
    # The new release's environment reached PM2 (FRONT_PORT from the settings, RELEASE_ID).
    env = vm.pm2_state.apps["frontend-dev"].env
    assert env["FRONT_PORT"] == "3001" and env["RELEASE_ID"] == new.release_id


def test_a_release_that_never_answers_is_reverted_after_the_ready_timeout(vm: FakeVm) -> None:
    old, new = vm.release("aaaaaaa"), vm.release("bbbbbbb", stamp="20260102T000000Z")
    vm.run_frontend(old)
    vm.hangs.add(new.app_dir)
    started = vm.clock()
    outcome = vm.switcher().switch_to(new, old)
    assert not outcome.serving and outcome.reverted and not outcome.revert_failed
    assert outcome.failure is not None and outcome.failure.startswith("did not answer 200")
    assert outcome.revert == f"reverted: {old.release_id} is serving again"
    assert vm.clock() - started >= vm.settings.releases.ready_timeout_s
    assert _frontend_cwd(vm) == old.app_dir and _dump_cwd(vm) == str(old.app_dir)
    assert outcome.dump_agrees is True
    assert _state(vm, new) is store.ReleaseState.FAILED
    assert _state(vm, old) is store.ReleaseState.GOOD


def test_a_release_pm2_cannot_start_is_reverted_at_once(vm: FakeVm) -> None:
    old, new = vm.release("aaaaaaa"), vm.release("bbbbbbb", stamp="20260102T000000Z")
    vm.run_frontend(old)
    vm.pm2_state.fail_start.add(new.app_dir)
    started = vm.clock()
    outcome = vm.switcher().switch_to(new, old)
    assert outcome.failure is not None and outcome.failure.startswith("could not be started")
    assert "switch failed" in outcome.failure  # the detached child's own sentence
    assert vm.clock() - started < 1 and _frontend_cwd(vm) == old.app_dir


def test_without_a_previous_release_the_frontend_is_stopped_and_saved(vm: FakeVm) -> None:
    new = vm.release("bbbbbbb")
    vm.hangs.add(new.app_dir)
    outcome = vm.switcher().switch_to(new, None)
    assert outcome.reverted and "no previous frontend" in (outcome.revert or "")
    assert "frontend-dev" not in vm.pm2_state.apps and _dump_cwd(vm) is None
    assert outcome.saved and outcome.dump_agrees is None


def test_a_failing_revert_is_reported_not_raised_and_pm2_is_still_saved(vm: FakeVm) -> None:
    old, new = vm.release("aaaaaaa"), vm.release("bbbbbbb", stamp="20260102T000000Z")
    vm.run_frontend(old)
    vm.hangs.add(new.app_dir)
    vm.pm2_state.fail_start.add(old.app_dir)
    before = vm.pm2_state.dump_path.read_text()
    outcome = vm.switcher().switch_to(new, old)
    assert outcome.revert_failed and (outcome.revert or "").startswith("REVERT FAILED")
    assert outcome.saved and vm.pm2_state.dump_path.read_text() != before
    assert _state(vm, new) is store.ReleaseState.FAILED


def test_a_failing_pm2_save_is_a_value_of_the_outcome(vm: FakeVm) -> None:
    old, new = vm.release("aaaaaaa"), vm.release("bbbbbbb", stamp="20260102T000000Z")
    vm.run_frontend(old)
    vm.pm2_state.fail_save = True
    outcome = vm.switcher().switch_to(new, old)
    assert outcome.serving and not outcome.saved and "Failed to save" in (outcome.save_error or "")
    assert _dump_cwd(vm) == str(old.app_dir)  # the dump still says the old release


def test_a_replaced_gate_decides_readiness_and_its_no_reverts(vm: FakeVm) -> None:
    old, new = vm.release("aaaaaaa"), vm.release("bbbbbbb", stamp="20260102T000000Z")
    vm.run_frontend(old)
    default = vm.switcher()

    def only_old(target: Target) -> http.Readiness:
        # A stricter gate than the default (the site answers for the new release too).
        return default.wait_until_serving(target.app_dir) if target == old \
            else http.Readiness(False, 5.0, {"gate": "not warmed up"})

    outcome = dataclasses.replace(default, gate=only_old).switch_to(new, old)
    assert not outcome.serving and outcome.failure is not None
    assert "not warmed up" in outcome.failure and not outcome.revert_failed
    assert _frontend_cwd(vm) == old.app_dir and _dump_cwd(vm) == str(old.app_dir)
