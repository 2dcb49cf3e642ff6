"""`fleet plan deploy` and `fleet health`'s release column, fed by the host side's own JSON: a
fake VM (real git, the fake PM2) answers `deploy --dry-run` and `health`, its result goes through
the JSON the CLI prints, and the controller side judges it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.world import FakeVm, commit, git
from vmkeeper import __version__, flock
from vmkeeper.fleet import plan
from vmkeeper.fleet.health import FleetStatus, host_health
from vmkeeper.fleet.runner import HostOutcome, Reach, Remote
from vmkeeper.jsonable import json_text
from vmkeeper.progress import Progress
from vmkeeper.releases import deploy, lock
from vmkeeper.settings import Settings


@pytest.fixture(scope="module")
def vm(tmp_path_factory: pytest.TempPathFactory) -> FakeVm:
    # One VM for the module (git and a deploy cost ~0.3 s): no test leaves a lock held.
    made = FakeVm.ready_to_deploy(tmp_path_factory.mktemp("vm"))
    commit(made.settings.workspace.path, "first release")
    assert deploy.deploy(made.settings, switcher=made.switcher()).ok
    return made


def _as_printed(value: object) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json_text(value))  # what `--json` prints on the host
    return data


def _dry_run(vm: FakeVm) -> dict[str, Any]:
    return _as_printed(deploy.deploy(vm.settings, branch="main", dry_run=True,
                                     switcher=vm.switcher()))


def _row(data: dict[str, Any], min_free_mb: int = 0) -> plan.PlannedHost:
    return plan.planned_host(HostOutcome("h1", Reach.ANSWERED, data, 0), 0, "main", min_free_mb)


def test_a_ready_host_shows_its_current_and_target_release(vm: FakeVm) -> None:
    target = commit(vm.settings.workspace.path, "second release")
    row = _row(_dry_run(vm))
    assert row.prechecks == [] and row.ready
    assert row.current_release is not None and row.current_sha is not None
    assert row.current_release.endswith(row.current_sha[:12])
    assert row.target_sha == target and row.target_sha != row.current_sha
    assert row.vmkeeper_version == __version__
    assert row.disk_free_mb is not None and row.disk_free_mb > 0


def test_the_target_is_what_the_remote_has_now_not_what_the_workspace_fetched(
        vm: FakeVm, tmp_path: Path) -> None:
    workspace = vm.settings.workspace.path
    other = tmp_path / "developer"
    git(tmp_path, "clone", "-q", str(workspace.parent / "origin.git"), str(other))
    (other / "frontend" / "VERSION").write_text("pushed elsewhere\n")
    git(other, "commit", "-q", "-am", "pushed elsewhere")
    git(other, "push", "-q", "origin", "HEAD:main")
    pushed = git(other, "rev-parse", "HEAD")
    data = _dry_run(vm)
    assert data["sha"] != pushed  # the workspace has not fetched it
    assert _row(data).target_sha == pushed


def test_a_remote_the_host_cannot_reach_stops_it(vm: FakeVm, tmp_path: Path) -> None:
    workspace = vm.settings.workspace.path
    url = git(workspace, "remote", "get-url", "origin")
    git(workspace, "remote", "set-url", "origin", str(tmp_path / "gone.git"))
    try:
        row = _row(_dry_run(vm))
    finally:
        git(workspace, "remote", "set-url", "origin", url)
    assert [c for c in row.prechecks if c.startswith("the host cannot ask its git remote")]


def test_a_live_deploy_lock_holder_is_named(vm: FakeVm) -> None:
    held = flock.take(vm.settings.releases.root / lock.LOCK_NAME, "deploy",
                      extra={"branch": "feature"})
    try:
        row = _row(_dry_run(vm))
    finally:
        held.release()
    assert row.lock_holder is not None and "branch feature" in row.lock_holder
    assert any("holds the host's deploy lock now" in c for c in row.prechecks)


def test_a_name_left_by_a_killed_deploy_is_not_a_holder(vm: FakeVm) -> None:
    # A deploy killed -9 leaves its holder text in the file; the kernel freed the lock.
    path = vm.settings.releases.root / lock.LOCK_NAME
    path.write_text(flock.Holder(999_999, "deploy", "2026-01-01T00:00:00Z").to_json())
    row = _row(_dry_run(vm))
    assert row.lock_holder is None and row.ready


def test_too_little_disk_and_another_version_stop_the_host(vm: FakeVm) -> None:
    data = _dry_run(vm)
    data["precheck"]["vmkeeper_version"] = "0.0.1"
    row = _row(data, min_free_mb=10**9)
    assert len(row.prechecks) == 2, row.prechecks
    assert "fleet.min_free_mb is 1000000000" in row.prechecks[1]
    assert row.prechecks[0].startswith(f"vmkeeper 0.0.1 on the host, {__version__} here")


def test_a_host_without_prechecks_or_unreachable_is_not_ready() -> None:
    old = _row({"ok": True, "dry_run": True, "active": "r1", "sha": "a" * 40})
    assert not old.ready and "reports no prechecks" in old.prechecks[0]
    gone = plan.planned_host(HostOutcome("h2", Reach.UNREACHABLE, message="refused"), 1,
                             "main", 0)
    assert not gone.reachable and gone.prechecks == ["unreachable: refused"]


def test_plan_deploy_asks_each_host_for_a_dry_run_of_the_branch(
        vm: FakeVm, tmp_path: Path) -> None:
    asked: list[list[str]] = []

    def runner(inventory: Path, remote: Remote, run_dir: Path,
               progress: Progress) -> list[HostOutcome]:
        asked.append(remote.args)
        data = _dry_run(vm)
        return [HostOutcome("h1", Reach.ANSWERED, data, 0),
                HostOutcome("h2", Reach.ANSWERED, data, 0),
                HostOutcome("h3", Reach.UNREACHABLE, message="timed out")]

    settings = Settings.model_validate({"state_dir": tmp_path / "control", "fleet": {
        "waves": [1, "100%"], "min_free_mb": 0}})
    result = plan.plan_deploy(settings, Path("inventory.ini"), "main", runner=runner)
    assert asked == [["deploy", "--dry-run", "--json", "--branch", "main"]]
    assert result.waves == [["h1"], ["h2", "h3"]]
    assert [h.ready for h in result.hosts] == [True, True, False] and not result.ready
    assert _as_printed(result)["hosts"][2]["prechecks"] == ["unreachable: timed out"]


def test_fleet_health_shows_the_release_each_host_runs(vm: FakeVm) -> None:
    report = vm.health()
    live = vm.pm2_state.apps["frontend-dev"].cwd
    assert report.active_release is not None and live is not None
    assert live.parent.name == report.active_release
    row = host_health(HostOutcome("h1", Reach.ANSWERED, _as_printed(report), 0))
    assert row.active_release == report.active_release
    assert row.status in (FleetStatus.OK, FleetStatus.WARN)
