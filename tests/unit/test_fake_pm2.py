"""The fake PM2 answers like the real one (so fast tests of the switch and recovery mean
something): jlist in the recorded shape, dump.pm2 as `pm2 save` writes it, the daemon's pid."""

from __future__ import annotations

import json
from pathlib import Path

from tests.fakes.pm2 import DATA
from tests.fakes.world import FakeVm


def test_jlist_has_the_recorded_shape_and_parses_like_it(tmp_path: Path) -> None:
    vm = FakeVm.at(tmp_path)
    vm.run_other_apps()
    recorded = json.loads((DATA / "jlist-healthy.json").read_text())
    fake = json.loads(vm.pm2_state(["pm2", "jlist"], timeout=5).stdout)
    assert set(fake[0]) == set(recorded[0])
    shape = {k for k in recorded[0]["pm2_env"] if not k.isupper()} - {"_", "unique_id"}
    assert shape <= set(fake[0]["pm2_env"])
    backend = vm.pm2.app("backend-dev")
    assert backend is not None and backend.online and backend.env_value("PORT") == "3000"
    assert backend.cwd == vm.settings.workspace.path / "backend"


def test_any_command_spawns_the_daemon_and_kill_stops_it(tmp_path: Path) -> None:
    vm = FakeVm.at(tmp_path)
    assert vm.pm2.daemon_pid() is None
    first = vm.pm2_state(["pm2", "jlist"], timeout=5).stdout
    assert "Spawning PM2 daemon" in first and vm.pm2.jlist() == []  # the banner is skipped
    assert vm.pm2.daemon_pid() is not None
    vm.pm2.kill()
    assert vm.pm2.daemon_pid() is None


def test_save_writes_the_dump_as_pm2_does_and_resurrect_restores_it(tmp_path: Path) -> None:
    vm = FakeVm.at(tmp_path)
    vm.run_other_apps()
    saved = vm.pm2_state.dump()
    assert [e["name"] for e in saved] == ["backend-dev", "fl-telemetry", "fl-executor"]
    assert all("pm_id" not in e and "instances" not in e for e in saved)
    assert vm.pm2_state.dump_path.read_text().startswith("[\n  {")  # pretty, two spaces
    vm.pm2.kill()
    vm.pm2.resurrect()
    assert [(a.name, a.online) for a in vm.pm2.jlist()] == [
        ("backend-dev", True), ("fl-telemetry", True), ("fl-executor", True)]


def test_save_without_force_keeps_the_dump_when_pm2_runs_nothing(tmp_path: Path) -> None:
    vm = FakeVm.at(tmp_path)
    vm.run_other_apps()
    before = vm.pm2_state.dump_path.read_text()
    vm.pm2.kill()
    vm.pm2.save()
    assert vm.pm2_state.dump_path.read_text() == before
    vm.pm2.save(force=True)
    assert vm.pm2_state.dump() == []
