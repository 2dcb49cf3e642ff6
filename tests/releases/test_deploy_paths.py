"""deploy's switch, revert and save paths in the fast tier: real git in a temp dir, a build
command that only writes the build output, and the fake PM2 world with a fake site and clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.world import FakeVm, commit
from vmkeeper.releases import deploy, history, store
from vmkeeper.releases.results import STEPS, DeployResult


@pytest.fixture
def vm(tmp_path: Path) -> FakeVm:
    return FakeVm.ready_to_deploy(tmp_path)


def _deploy(vm: FakeVm, message: str, files: dict[str, str | None] | None = None
            ) -> DeployResult:
    commit(vm.settings.workspace.path, message, files)
    return deploy.deploy(vm.settings, switcher=vm.switcher())


def _frontend_cwd(vm: FakeVm) -> Path | None:
    app = vm.pm2_state.apps.get("frontend-dev")
    return app.cwd if app is not None and app.online else None


def _dump_cwd(vm: FakeVm) -> str | None:
    return next((e["pm_cwd"] for e in vm.pm2_state.dump() if e["name"] == "frontend-dev"), None)


def _app_dir(vm: FakeVm, release_id: str | None) -> Path:
    assert release_id is not None
    return vm.settings.releases.root / release_id / "frontend"


def test_a_second_deploy_switches_saves_and_prunes_down_to_keep(vm: FakeVm) -> None:
    vm.settings = vm.settings.model_copy(update={"releases": vm.settings.releases.model_copy(
        update={"keep": 1})})
    first, second = _deploy(vm, "one"), _deploy(vm, "two")
    assert first.ok and second.ok, (first.error, second.error)
    assert [s.name for s in second.steps] == list(STEPS)
    assert second.previous == first.release and second.active == second.release
    assert str(second.release) > str(first.release)  # ids order by time, even within a second
    assert _frontend_cwd(vm) == _app_dir(vm, second.release)
    assert _dump_cwd(vm) == str(_app_dir(vm, second.release)) and second.dump_agrees
    assert second.pruned == [first.release]
    assert [r.id for r in store.list_releases(vm.settings.releases.root)] == [second.release]


def test_a_release_that_never_answers_is_reverted_removed_and_the_dump_kept(vm: FakeVm) -> None:
    good = _deploy(vm, "good")
    result = _deploy(vm, "never ready", {"NEVER_READY": "1"})
    assert not result.ok and result.failed_step == "switch" and result.reverted
    assert result.error is not None and "did not answer 200" in result.error
    assert f"reverted: {good.release} is serving again" in result.error
    assert result.active == good.release and _frontend_cwd(vm) == _app_dir(vm, good.release)
    assert _dump_cwd(vm) == str(_app_dir(vm, good.release)) and result.dump_agrees
    assert [r.id for r in store.list_releases(vm.settings.releases.root)] == [good.release]
    assert history.read(vm.settings.releases.root)[-1]["result"] == "reverted"


def test_a_first_release_that_never_answers_leaves_no_frontend_and_a_saved_dump(
        vm: FakeVm) -> None:
    result = _deploy(vm, "never ready", {"NEVER_READY": "1"})
    assert not result.ok and result.failed_step == "switch" and result.reverted
    assert result.error is not None and "no previous frontend to go back to" in result.error
    assert "frontend-dev" not in vm.pm2_state.apps and _dump_cwd(vm) is None
    assert store.list_releases(vm.settings.releases.root) == []
    assert history.read(vm.settings.releases.root)[-1]["phase"] == "finished"


def test_a_failing_pm2_save_fails_step_8_but_keeps_the_serving_release(vm: FakeVm) -> None:
    good = _deploy(vm, "good")
    vm.pm2_state.fail_save = True
    result = _deploy(vm, "unsaved")
    assert not result.ok and result.failed_step == "save" and not result.reverted
    assert result.error is not None and "pm2 save failed" in result.error
    assert result.active == result.release and _frontend_cwd(vm) == _app_dir(vm, result.release)
    # Nothing was pruned and the serving release stays; the dump still says the good one.
    assert {r.id for r in store.list_releases(vm.settings.releases.root)} == {
        good.release, result.release}
    assert _dump_cwd(vm) == str(_app_dir(vm, good.release))


def test_the_install_and_build_output_lines_are_output_events_of_their_step(vm: FakeVm) -> None:
    from vmkeeper.progress import Phase, ProgressEvent

    vm.settings = vm.settings.model_copy(update={"releases": vm.settings.releases.model_copy(
        update={"install_command": ["sh", "-c", "echo added 3 packages; echo 'npm warn x' >&2"],
                "build_command": ["sh", "-c", "echo Compiling; mkdir -p build && "
                                  "echo ok > build/index; echo done"]})})
    events: list[ProgressEvent] = []
    commit(vm.settings.workspace.path, "output")
    result = deploy.deploy(vm.settings, switcher=vm.switcher(), progress=events.append)
    assert result.ok, result.error
    output = [(e.step, e.index, e.message) for e in events if e.phase is Phase.OUTPUT]
    assert output == [("install", 4, "added 3 packages"), ("install", 4, "npm warn x"),
                      ("build", 5, "Compiling"), ("build", 5, "done")]
    # each line arrives inside its step: after the step started, before it is done
    assert [e.phase for e in events if e.step == "build"] == [
        Phase.STARTED, Phase.OUTPUT, Phase.OUTPUT, Phase.DONE]
