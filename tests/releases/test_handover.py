"""The zero-downtime switch's orchestration in the fast tier: the fake PM2 world, a fake Apache
(its graceful restarts and its connections to the upstreams) and the fake clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.world import FakeVm
from vmkeeper import proc
from vmkeeper.adapters import apache
from vmkeeper.adapters.pm2 import Pm2
from vmkeeper.errors import CommandFailed, DeployError
from vmkeeper.releases import handover, store
from vmkeeper.releases.activation import Target
from vmkeeper.releases.switch import Switcher

SPARE = 3002


@dataclass
class FakeApache:
    """Apache's side of the switch: its graceful restarts (recorded; only a new include needs
    one) and its connections to an upstream, which exist while a request is in flight there
    (``in_flight_until``: no pooled connections)."""

    vm: FakeVm
    refuse: bool = False
    gracefuls: int = 0
    in_flight_until: dict[int, float] = field(default_factory=dict)

    def runner(self, argv: list[str], **_kw: Any) -> proc.Result:
        assert argv == ["apachectl", "graceful"]
        if self.refuse:
            raise CommandFailed(proc.Result(tuple(argv), 1, "", "Syntax error", 0.01))
        self.gracefuls += 1
        return proc.Result(tuple(argv), 0, "", "", 0.01)

    def connections(self, port: int) -> int:
        return int(self.vm.clock() < self.in_flight_until.get(port, 0.0))


@pytest.fixture
def vm(tmp_path: Path) -> FakeVm:
    world = FakeVm.at(tmp_path)
    world.run_other_apps()
    return world


@dataclass
class Recorder:
    """The fake PM2, with each `start`/`delete` recorded as (command, app, clock time)."""

    vm: FakeVm
    calls: list[tuple[str, str, float]] = field(default_factory=list)

    def __call__(self, argv: proc.Argv, **kw: Any) -> proc.Result:
        args = [str(a) for a in argv]
        if args[1] in ("start", "delete"):
            name = args[args.index("--name") + 1] if "--name" in args else args[2]
            self.calls.append((args[1], name, self.vm.clock()))
        return self.vm.pm2_state(argv, **kw)


def _handover(vm: FakeVm, fake: FakeApache, recorder: Recorder | None = None
              ) -> handover.Handover:
    pm2 = Pm2(bin="pm2", home=vm.settings.pm2.home, timeout=5,
              runner=recorder or vm.pm2_state, daemon_list=None)
    return handover.Handover(vm.settings, pm2, sleep=vm.clock.sleep, clock=vm.clock,
                             probe=vm.probe, runner=fake.runner, connections=fake.connections)


def _two_releases(vm: FakeVm) -> tuple[Target, Target]:
    old = vm.release("aaaaaaa")
    new = vm.release("bbbbbbb", stamp="20260102T000000Z")
    vm.run_frontend(old)
    return old, new


def test_the_switch_goes_through_the_spare_and_ends_in_the_runbook_state(vm: FakeVm) -> None:
    old, new = _two_releases(vm)
    fake = FakeApache(vm)
    recorder = Recorder(vm)
    switch = _handover(vm, fake, recorder)
    routes: list[int] = []
    answers: list[int | None] = []
    real_route = switch.route

    def route(port: int) -> None:
        real_route(port)
        routes.append(port)
        answers.append(vm.probe(vm.settings.public_url + "/", timeout=1).status)

    switch.route = route  # type: ignore[method-assign]
    switch.activate(new)
    front = vm.pm2_state.apps["frontend-dev"]
    assert front.cwd == new.app_dir and front.env["FRONT_PORT"] == "3001"
    assert front.env["RELEASE_ID"] == new.release_id
    assert "frontend-dev-handover" not in vm.pm2_state.apps
    # One graceful, to load the include the first time; the flips only rewrite the map.
    assert fake.gracefuls == 1 and routes == [3001, SPARE, 3001]
    assert vm.routed_port() == 3001
    calls = [(command, name) for command, name, _at in recorder.calls]
    assert calls == [("delete", "frontend-dev-handover"), ("start", "frontend-dev-handover"),
                     ("delete", "frontend-dev"), ("start", "frontend-dev"),
                     ("delete", "frontend-dev-handover")]
    # Whenever the map changed, the site through Apache answered.
    assert answers == [200, 200, 200]
    assert old.app_dir.exists()


def test_the_old_server_is_stopped_only_after_its_in_flight_request_ended(vm: FakeVm) -> None:
    _old, new = _two_releases(vm)
    fake = FakeApache(vm)
    fake.in_flight_until[3001] = vm.clock() + 3.0  # a 3 s request on the old server
    recorder = Recorder(vm)
    switch = _handover(vm, fake, recorder)
    switch.activate(new)
    deleted_at = next(at for command, name, at in recorder.calls
                      if (command, name) == ("delete", "frontend-dev"))
    assert deleted_at >= fake.in_flight_until[3001] + handover.QUIET_S
    assert switch.seconds["drain"] >= 3.0
    assert any("drained in" in n for n in switch.report())


def test_a_release_that_never_answers_on_the_spare_changes_nothing_live(vm: FakeVm) -> None:
    old, new = _two_releases(vm)
    vm.hangs.add(new.app_dir)
    fake = FakeApache(vm)
    with pytest.raises(DeployError, match="did not answer 200 on the spare port 3002"):
        _handover(vm, fake).activate(new)
    assert vm.pm2_state.apps["frontend-dev"].cwd == old.app_dir
    assert "frontend-dev-handover" not in vm.pm2_state.apps
    assert vm.routed_port() == 3001


def test_apache_refusing_a_new_include_takes_it_back_and_changes_nothing(vm: FakeVm) -> None:
    old, new = _two_releases(vm)
    fake = FakeApache(vm, refuse=True)
    include = vm.settings.proxy.frontend_include
    include.parent.mkdir(parents=True)
    include.write_text("# an older vmkeeper's include\n")
    with pytest.raises(DeployError, match="Apache refused"):
        _handover(vm, fake).activate(new)
    assert include.read_text() == "# an older vmkeeper's include\n"
    assert "frontend-dev-handover" not in vm.pm2_state.apps
    assert vm.pm2_state.apps["frontend-dev"].cwd == old.app_dir
    fake.refuse = False
    _handover(vm, fake).activate(new)  # once Apache takes it, the switch goes through
    assert fake.gracefuls == 1 and vm.pm2_state.apps["frontend-dev"].cwd == new.app_dir


@pytest.mark.parametrize("killed_at", ["flip", "drain", "restart", "back", "retire"])
def test_repair_after_a_kill_keeps_the_release_the_site_serves_and_cleans_up(
    vm: FakeVm, killed_at: str
) -> None:
    old, new = _two_releases(vm)
    fake = FakeApache(vm)
    switch = _handover(vm, fake)

    class Killed(Exception):
        pass

    def stop_at(name: str) -> None:
        if name == killed_at:
            raise Killed

    switch._sub = stop_at  # type: ignore[method-assign]
    with pytest.raises(Killed):
        switch.activate(new)
    serving = vm.probe(vm.settings.public_url + "/", timeout=1)
    assert serving.status == 200  # the site was never down
    expected = old if killed_at == "flip" else new
    repaired = _handover(vm, fake)
    notes = repaired.repair()
    front = vm.pm2_state.apps["frontend-dev"]
    assert front.online and front.cwd == expected.app_dir and front.env["FRONT_PORT"] == "3001"
    assert "frontend-dev-handover" not in vm.pm2_state.apps
    assert vm.routed_port() == 3001
    assert any("temporary app" in n for n in notes)
    assert [e["pm_cwd"] for e in vm.pm2_state.dump() if e["name"] == "frontend-dev"] == [
        str(expected.app_dir)]
    if killed_at in ("drain", "restart"):  # adopted from the spare: it served, so it is good
        meta = store.read_meta(vm.settings.releases.root / str(new.release_id))
        assert meta is not None and meta.state is store.ReleaseState.GOOD
    assert repaired.repair() == []  # nothing left to do


def test_the_gated_switch_reverts_through_the_handover_without_a_second_dance(
    vm: FakeVm,
) -> None:
    old, new = _two_releases(vm)
    vm.hangs.add(new.app_dir)
    fake = FakeApache(vm)
    switcher = Switcher(vm.settings, vm.pm2, _handover(vm, fake), probe=vm.probe,
                        clock=vm.clock, sleep=vm.clock.sleep)
    outcome = switcher.switch_to(new, old)
    assert not outcome.serving and outcome.reverted and not outcome.revert_failed
    assert outcome.failure is not None and "spare port" in outcome.failure
    assert any("still serving" in n for n in handover.Handover.report(switcher.activation))  # type: ignore[arg-type]
    # The revert found the old release still serving: no second hand-over.
    assert vm.routed_port() == 3001 and vm.pm2_state.apps["frontend-dev"].cwd == old.app_dir
    assert "frontend-dev-handover" not in vm.pm2_state.apps


def test_without_the_snippet_the_switch_is_the_runbooks_and_says_why(vm: FakeVm) -> None:
    vm.settings.proxy.config.write_text("ProxyPass / http://127.0.0.1:3001/\n")
    chosen = handover.activation_for(vm.settings, vm.pm2)
    assert isinstance(chosen, handover.RunbookSwitch)
    assert "runbook's" in chosen.report()[0] and "vmkeeper doctor" in chosen.report()[0]
    vm.settings.proxy.config.write_text(apache.snippet(vm.settings.proxy.frontend_include))
    assert isinstance(handover.activation_for(vm.settings, vm.pm2), handover.Handover)
