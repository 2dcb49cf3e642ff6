"""The cheap/heavy split on the fake VM and a FakeClock: cheap checks every cycle, the heavy
facts (disk, dump, Node, Apache's config) every watch.heavy_every cycles or heavy_every_s
seconds, their last result carried into the cycles that skip them, a fresh full look as soon
as the cheap look finds the chain broken; and the setting's validation."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.fakes.world import FakeVm
from tests.support.clock import FakeClock
from vmkeeper import telemetry
from vmkeeper.adapters import host
from vmkeeper.errors import SettingsError
from vmkeeper.gather import Got
from vmkeeper.health import checks
from vmkeeper.health.facts import HEAVY, Facts, gather
from vmkeeper.health.model import HealthReport, Status
from vmkeeper.health.service import report_from_checks
from vmkeeper.settings import load_settings
from vmkeeper.watch.service import Looker


class Counted:
    """The fake VM's look, honouring ``carried`` as gather does, counting heavy gatherings;
    its disk fills by 10 points at each heavy gathering, so a carried reading is told apart."""

    def __init__(self, world: FakeVm) -> None:
        self.world = world
        self.heavy = 0
        self.looks = 0
        self.used_pct = 50
        self.fill = 10  # points the disk fills at each heavy gathering

    def __call__(self, carried: Facts | None) -> tuple[Facts, HealthReport]:
        self.looks += 1
        facts = self.world.facts()
        if carried is None:
            self.heavy += 1
            self.used_pct += self.fill
            disk = host.FsUsage(Path("/"), "/", 100, 100 - self.used_pct, 1000, 900, 1)
            facts = dataclasses.replace(facts, filesystems=Got([disk]))
        else:
            facts = dataclasses.replace(facts, **{n: getattr(carried, n) for n in HEAVY})
        found = checks.evaluate(facts, self.world.settings, "pm2")
        return facts, report_from_checks(found, 0.01, "pm2")


def _healthy(tmp_path: Path, **watch: object) -> tuple[FakeVm, Counted, Looker, FakeClock]:
    world = FakeVm.at(tmp_path)
    world.run_frontend(world.release("aaaaaaa"))
    world.run_other_apps()
    settings = world.settings.model_copy(update={
        "watch": world.settings.watch.model_copy(update=watch)})
    clock = FakeClock()
    counted = Counted(world)
    return world, counted, Looker(settings, counted, clock), clock


def _disk(looker: Looker) -> str:
    assert looker.last is not None
    [disk] = [c for c in looker.last.checks if c.name == "disk:/"]
    return disk.summary


def test_heavy_checks_run_every_nth_cycle_and_are_carried_between(tmp_path: Path) -> None:
    _world, counted, looker, clock = _healthy(tmp_path, interval_s=5, heavy_every=4)
    seen = []
    for _ in range(9):
        assert looker().look.healthy
        seen.append((counted.heavy, _disk(looker)))
        clock.advance(5)
    assert [n for n, _ in seen] == [1, 1, 1, 1, 2, 2, 2, 2, 3]  # cycles 1, 5, 9
    assert {d for n, d in seen if n == 1} == {"/ 60% used, 0.0 GiB free"}  # carried: cycle 1's
    assert {d for n, d in seen if n == 2} == {"/ 70% used, 0.0 GiB free"}


def test_heavy_every_s_comes_first_when_shorter(tmp_path: Path) -> None:
    _world, counted, looker, clock = _healthy(tmp_path, interval_s=5, heavy_every=100,
                                              heavy_every_s=12)
    for _ in range(7):  # t = 0, 5, 10, 15, 20, 25, 30: heavy at 0, 15, 30
        looker()
        clock.advance(5)
    assert counted.heavy == 3


def test_a_broken_chain_is_looked_at_in_full_at_once(tmp_path: Path) -> None:
    world, counted, looker, clock = _healthy(tmp_path, interval_s=5, heavy_every=100)
    looker()
    clock.advance(5)
    world.pm2.save(force=True)  # the live list saved...
    world.pm2_state.apps.clear()  # ...then every app gone: the dump is what decides now
    world.pm2.save(force=True)  # an empty dump, which only a heavy look reads
    seen = looker()
    assert counted.heavy == 2 and not seen.look.healthy
    assert looker.last is not None
    [dump] = [c for c in looker.last.checks if c.name == "dump"]
    assert dump.status is Status.CRITICAL  # the empty dump, not cycle 1's carried full one
    assert not seen.look.actionable  # no resurrect from an empty dump


def test_gather_takes_the_heavy_facts_from_carried(tmp_path: Path) -> None:
    world = FakeVm.at(tmp_path)
    carried = world.facts()
    fresh = gather(world.settings, pm2=world.pm2, mode="pm2", carried=carried)
    for name in HEAVY:
        assert getattr(fresh, name) is getattr(carried, name)
    assert fresh.pm2.value is not None  # the cheap ones are gathered anew


def test_heavy_every_s_shorter_than_the_interval_is_refused(tmp_path: Path) -> None:
    config = tmp_path / "vmkeeper.toml"
    config.write_text("[watch]\ninterval_s = 5\nheavy_every_s = 2\n")
    with pytest.raises(SettingsError, match=r"watch.heavy_every_s.*shorter than "
                                            r"watch.interval_s \(5\)"):
        load_settings(config)


def test_a_carried_check_keeps_its_last_success_time_in_the_textfile(tmp_path: Path) -> None:
    prom = tmp_path / "watch.prom"
    _world, _counted, looker, clock = _healthy(tmp_path, interval_s=5, heavy_every=4,
                                               textfile=prom)
    first = clock()
    looker()
    clock.advance(5)
    looker()  # a cheap cycle: disk and dump carried from the first
    text = prom.read_text()
    assert f'vmkeeper_last_success_timestamp_seconds{{check="disk:/"}} {first:.3f}' in text
    assert f'vmkeeper_last_success_timestamp_seconds{{check="dump"}} {first:.3f}' in text
    assert (f'vmkeeper_last_success_timestamp_seconds{{check="pm2:frontend-dev"}} '
            f'{first + 5:.3f}') in text
    assert f"vmkeeper_watch_heavy_last_run_timestamp_seconds {first:.3f}" in text


def test_an_outage_looks_in_full_once_per_cycle(tmp_path: Path) -> None:
    world, counted, looker, clock = _healthy(tmp_path, interval_s=5, heavy_every=100)
    looker()
    world.apache_up = False  # broken for three cycles
    looks = []
    for _ in range(3):
        clock.advance(5)
        before = (counted.looks, counted.heavy)
        looker()
        looks.append((counted.looks - before[0], counted.heavy - before[1]))
    assert looks == [(2, 1), (1, 1), (1, 1)]  # a cheap look, then in full; then in full only


def test_the_collector_hears_of_a_change_at_once_and_of_a_steady_vm_at_its_own_period(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    world, counted, looker, clock = _healthy(tmp_path, interval_s=5, heavy_every=100)
    counted.fill = 0  # the same disk each look: only the outage changes what is seen
    pushed: list[str] = []
    monkeypatch.setattr(telemetry, "export_soon",
                        lambda: pushed.append(looker.last.verdict if looker.last else ""))
    for _ in range(4):  # a steady VM: the first look is pushed, the next three wait their turn
        looker()
        clock.advance(5)
    assert len(pushed) == 1
    world.pm2_state.apps.clear()  # every app gone
    for _ in range(3):
        looker()
        clock.advance(5)
    assert len(pushed) == 2 and pushed[1] != pushed[0]  # the outage, at once and once
    world.run_frontend(world.release("bbbbbbb"))  # a person brought it back
    world.run_other_apps()
    looker()
    assert len(pushed) == 3 and pushed[2] == pushed[0]  # and the recovery
