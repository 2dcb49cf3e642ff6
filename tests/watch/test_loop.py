"""The watcher's rules on a scripted world and a FakeClock: hysteresis, one incident per
outage, the budget with backoff, gave-up with one alert, the budget reset, the deploy window."""

from __future__ import annotations

import itertools
from pathlib import Path

from tests.support.clock import FakeClock
from vmkeeper.settings import WatchSettings
from vmkeeper.watch.loop import Alert, Attempt, Observation, Watcher
from vmkeeper.watch.state import Look, Phase, backoff
from vmkeeper.watch.store import Store

RULES = WatchSettings(interval_s=5, down_after=2, up_after=2, max_recoveries=3, window_s=3600,
                      backoff_s=10, backoff_max_s=40, reset_after_s=60)


class World:
    """A chain that is healthy or not, and a recovery that heals it or not."""

    def __init__(self) -> None:
        self.healthy = True
        self.actionable = True
        self.maintenance = False
        self.heals = True
        self.recoveries = 0

    def observe(self) -> Observation:
        look = Look(self.healthy, self.actionable, self.maintenance)
        return Observation(look, "ok" if self.healthy else "frontend-dev stopped")

    def recover(self) -> Attempt:
        self.recoveries += 1
        if self.heals:
            self.healthy = True
        return Attempt(self.heals, "frontend-dev stopped", [{"command": "pm2 restart x"}])


def _watcher(tmp_path: Path, world: World, clock: FakeClock, alerts: list[Alert]) -> Watcher:
    return Watcher(RULES, Store(tmp_path), world.observe, world.recover, alerts.append,
                   clock=clock, sleep=clock.sleep)


def _kinds(alerts: list[Alert]) -> list[str]:
    return [a.kind for a in alerts]


def test_one_bad_cycle_is_no_incident(tmp_path: Path) -> None:
    world, clock, alerts = World(), FakeClock(), []
    watcher = _watcher(tmp_path, world, clock, alerts)
    world.healthy = False
    watcher.run(1)
    world.healthy = True
    watcher.run(3)
    assert alerts == [] and world.recoveries == 0 and Store(tmp_path).incidents() == []


def test_an_outage_is_one_incident_recovered_and_resolved(tmp_path: Path) -> None:
    world, clock, alerts = World(), FakeClock(), []
    watcher = _watcher(tmp_path, world, clock, alerts)
    world.healthy = False
    watcher.run(4)
    assert world.recoveries == 1
    assert _kinds(alerts) == ["open", "resolved"]
    [incident] = Store(tmp_path).incidents()
    assert incident.state == "resolved" and len(incident.actions) == 1
    assert incident.seconds_to_recover == 10.0  # opened on cycle 2, resolved on cycle 4


def test_no_safe_action_gives_up_with_one_alert(tmp_path: Path) -> None:
    world, clock, alerts = World(), FakeClock(), []
    watcher = _watcher(tmp_path, world, clock, alerts)
    world.healthy, world.actionable = False, False  # Apache stopped: nothing vmkeeper may do
    watcher.run(20)
    assert _kinds(alerts) == ["gave_up"] and world.recoveries == 0
    assert [i.state for i in Store(tmp_path).incidents()] == ["gave_up"]
    world.healthy = True
    watcher.run(2)
    assert _kinds(alerts) == ["gave_up", "resolved"]


def test_recoveries_back_off_then_give_up_after_k(tmp_path: Path) -> None:
    world, clock, alerts = World(), FakeClock(), []
    world.heals = False
    watcher = _watcher(tmp_path, world, clock, alerts)
    world.healthy = False
    started = clock()
    tries: list[float] = []
    for _ in range(40):
        before = world.recoveries
        watcher.run(1)
        if world.recoveries > before:
            tries.append(clock() - started)
    assert world.recoveries == RULES.max_recoveries
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert gaps == [10.0, 20.0]  # backoff_s doubled, on the 5 s cycle grid
    assert _kinds(alerts) == ["open", "gave_up"]
    assert Store(tmp_path).load_state().phase is Phase.GAVE_UP


def test_budget_resets_after_a_healthy_period(tmp_path: Path) -> None:
    world, clock, alerts = World(), FakeClock(), []
    watcher = _watcher(tmp_path, world, clock, alerts)
    for _ in range(3):  # three outages, each healed: the budget is spent
        world.healthy = False
        watcher.run(4)
    assert len(Store(tmp_path).load_state().recoveries) == 3
    watcher.run(int(RULES.reset_after_s / RULES.interval_s) + 1)
    assert Store(tmp_path).load_state().recoveries == ()
    world.healthy = False
    watcher.run(4)
    assert world.recoveries == 4 and _kinds(alerts)[-2:] == ["open", "resolved"]


def test_without_reset_the_fourth_outage_gives_up(tmp_path: Path) -> None:
    world, clock, alerts = World(), FakeClock(), []
    watcher = _watcher(tmp_path, world, clock, alerts)
    for _ in range(4):
        world.healthy = False
        watcher.run(4)
    assert world.recoveries == 3 and _kinds(alerts)[-1] == "gave_up"


def test_a_deploy_holding_the_lock_is_no_incident(tmp_path: Path) -> None:
    world, clock, alerts = World(), FakeClock(), []
    watcher = _watcher(tmp_path, world, clock, alerts)
    world.maintenance = True
    for _ in range(10):
        world.healthy = not world.healthy  # the blips of a switch
        watcher.run(1)
    assert alerts == [] and world.recoveries == 0


def test_a_look_that_raises_is_a_bad_look(tmp_path: Path) -> None:
    from vmkeeper.errors import VmkeeperError

    clock, alerts = FakeClock(), []

    def broken() -> Observation:
        raise VmkeeperError("pm2 timed out")

    watcher = Watcher(RULES, Store(tmp_path), broken, World().recover, alerts.append,
                      clock=clock, sleep=clock.sleep)
    watcher.run(3)
    assert _kinds(alerts) == ["gave_up"]


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff(RULES, n) for n in range(5)] == [0.0, 10.0, 20.0, 40.0, 40.0]
