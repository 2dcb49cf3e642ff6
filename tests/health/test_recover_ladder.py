"""recover's attempts, backoff and ladder in the fast tier: the fake PM2 world runs the plan's
argv, health is observed from its state through the real checks, and time is a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.world import FakeVm
from vmkeeper.health.model import Status
from vmkeeper.recover import RecoverResult, recover


@pytest.fixture
def vm(tmp_path: Path) -> FakeVm:
    world = FakeVm.at(tmp_path, recover_attempts=3, recover_backoff_s=2, recover_timeout_s=90)
    world.run_frontend(world.release("aaaaaaa"))
    world.run_other_apps()
    assert world.health().status is Status.OK
    return world


def run(vm: FakeVm, *, dry_run: bool = False) -> RecoverResult:
    return recover(vm.settings, dry_run=dry_run, observe=vm.health, runner=vm.pm2_state,
                   sleep=vm.clock.sleep, clock=vm.clock, evidence=lambda _s, _d: [])


def commands(result: RecoverResult) -> list[str]:
    return [a.command for a in result.actions]


def test_a_healthy_vm_needs_nothing_and_looks_twice(vm: FakeVm) -> None:
    result = run(vm)
    assert result.ok and result.actions == [] and result.diagnosis.startswith("healthy")
    assert vm.clock.slept == [1.5]  # a crash loop looks online between crashes


def test_pm2_killed_is_resurrected_once_and_verified(vm: FakeVm) -> None:
    vm.pm2.kill()
    planned = run(vm, dry_run=True)
    assert planned.dry_run and planned.plan == ["pm2 resurrect"]
    assert not vm.pm2_state.daemon_running  # the dry run changed nothing
    result = run(vm)
    assert result.ok and result.attempts == 1 and commands(result) == ["pm2 resurrect"]
    assert result.actions[0].ok and "Every layer answers" in (result.actions[0].recheck or "")
    assert result.health_after is not None and result.health_after.status is Status.OK
    assert vm.pm2_state.apps["frontend-dev"].online


def test_one_stopped_app_is_restarted(vm: FakeVm) -> None:
    vm.pm2.stop("backend-dev")
    result = run(vm)
    assert result.ok and commands(result) == ["pm2 restart backend-dev --update-env"]
    assert vm.pm2_state.apps["backend-dev"].online


def test_a_crash_loop_stops_after_the_attempts_with_doubling_backoff(vm: FakeVm) -> None:
    vm.pm2_state.crashing.add("fl-executor")
    vm.pm2.restart("fl-executor")
    started = vm.clock()
    result = run(vm)
    assert not result.ok and result.attempts == 3
    assert commands(result) == ["pm2 restart fl-executor --update-env"] * 3
    assert "Not healed after 3 attempt(s)" in result.diagnosis
    assert "fl-executor" in result.diagnosis
    backoffs = [s for s in vm.clock.slept if s not in (1.0, 1.5)]
    assert backoffs == [2, 4]
    assert vm.clock() - started <= vm.settings.health.recover_timeout_s + 10


def test_the_deadline_bounds_the_ladder(vm: FakeVm) -> None:
    vm.settings = vm.settings.model_copy(update={"health": vm.settings.health.model_copy(
        update={"recover_timeout_s": 6, "recover_attempts": 5})})
    vm.pm2_state.crashing.add("fl-executor")
    vm.pm2.restart("fl-executor")
    started = vm.clock()
    result = run(vm)
    assert not result.ok and result.attempts < 5
    assert vm.clock() - started < 6 + 2 * 4  # at most one backoff past the deadline


def test_an_emptied_dump_with_pm2_down_is_refused_and_nothing_runs(vm: FakeVm) -> None:
    vm.pm2.kill()
    vm.pm2_state.dump_path.write_text("[]")
    result = run(vm)
    assert not result.ok and result.actions == [] and "refusing to resurrect" in result.diagnosis
    assert not vm.pm2_state.daemon_running


def test_apache_down_is_said_and_left_alone(vm: FakeVm) -> None:
    vm.apache_up = False
    result = run(vm)
    assert not result.ok and result.actions == []
    assert "Apache itself is down" in result.diagnosis


def test_pm2_down_and_apache_down_resurrects_pm2_then_stops_at_apache(vm: FakeVm) -> None:
    vm.pm2.kill()
    vm.apache_up = False
    result = run(vm)
    assert commands(result) == ["pm2 resurrect"] and vm.pm2_state.apps["frontend-dev"].online
    assert not result.ok and result.attempts == 1
    assert "Apache itself is down" in result.diagnosis  # the re-plan refused


def _cut_off_switch(vm: FakeVm, port: int) -> None:
    """What a deploy killed between `flip` and `back` leaves after a reboot: Apache's map on
    the spare port, the temporary app gone (never saved), frontend-dev on FRONT_PORT."""
    from vmkeeper.adapters import apache
    from vmkeeper.releases import handover

    settings = vm.settings
    include = settings.proxy.frontend_include
    settings.proxy.config.write_text(f'IncludeOptional "{include}"\n')
    include.parent.mkdir(parents=True, exist_ok=True)
    include.write_text(apache.render_frontend_include(
        include, settings.releases.root, [3001, settings.releases.spare_port]))
    handover.write_map(settings, port)


def _finisher(vm: FakeVm):  # the real repair, on the fake PM2 and clock
    from vmkeeper.releases import handover

    def finish() -> list[str]:
        return handover.Handover(vm.settings, vm.pm2, sleep=vm.clock.sleep, clock=vm.clock,
                                 probe=vm.probe, runner=vm.pm2_state,
                                 connections=lambda _port: 0).repair()
    return finish


def test_a_switch_cut_off_on_the_spare_port_is_finished_and_verified(vm: FakeVm) -> None:
    from vmkeeper.adapters import apache
    from vmkeeper.health.model import Cause, Layer
    from vmkeeper.health.verdict import diagnose
    from vmkeeper.recover_plan import FINISH_SWITCH

    _cut_off_switch(vm, vm.settings.releases.spare_port)
    report = vm.health()
    assert report.status is Status.CRITICAL
    found = diagnose(report.checks)
    assert (found.layer, found.cause) == (Layer.APACHE, Cause.MISROUTED)
    assert "port 3002, where nothing serves" in found.line
    assert "vmkeeper recover" in (found.advice or "")
    assert run(vm, dry_run=True).plan == [FINISH_SWITCH]
    result = recover(vm.settings, observe=vm.health, runner=vm.pm2_state, sleep=vm.clock.sleep,
                     clock=vm.clock, evidence=lambda _s, _d: [], finish_switch=_finisher(vm))
    assert result.ok and commands(result) == [FINISH_SWITCH], result.diagnosis
    assert "routed Apache to port 3001" in result.actions[0].output
    routed = apache.map_path(vm.settings.proxy.frontend_include).read_text()
    assert apache.map_port(routed) == 3001 and vm.health().status is Status.OK


def test_the_spare_port_serving_the_site_is_a_warning_not_an_outage(vm: FakeVm) -> None:
    from vmkeeper.health.model import Cause

    _cut_off_switch(vm, vm.settings.releases.spare_port)
    app = vm.pm2_state.apps["frontend-dev"]
    vm.pm2.start_npm("frontend-dev-handover", cwd=app.cwd, script="start",
                     env={**app.env, "FRONT_PORT": str(vm.settings.releases.spare_port)})
    report = vm.health()
    route = next(c for c in report.checks if c.name == "proxy:route")
    assert route.status is Status.WARN and route.reason is Cause.MISROUTED
    assert report.status is Status.WARN and "temporary app serves it" in route.summary
    assert run(vm).actions == []  # the site serves: the next deploy finishes the switch


def test_a_map_naming_no_port_is_critical(vm: FakeVm) -> None:
    from vmkeeper.adapters import apache

    _cut_off_switch(vm, 3001)
    apache.map_path(vm.settings.proxy.frontend_include).write_text("# garbled\n")
    route = next(c for c in vm.health().checks if c.name == "proxy:route")
    assert route.status is Status.CRITICAL and "names none" in route.summary
