"""The rolling deploy's orchestration with a fake fleet: waves, soak, halt, hold/converge,
resume and the fleet lock — every host command answered as vmkeeper's JSON would be."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.clock import FakeClock
from vmkeeper.errors import LockHeld, UsageError
from vmkeeper.fleet import records, rollout
from vmkeeper.fleet.records import HostState, RunState
from vmkeeper.fleet.runner import HostOutcome, Reach, Remote
from vmkeeper.progress import Progress
from vmkeeper.settings import Settings

HOSTS = ["h1", "h2", "h3", "h4"]


class FakeFleet:
    """Each host's active release; ``broken`` hosts fail their build."""

    def __init__(self) -> None:
        self.active = dict.fromkeys(HOSTS, "r-old")
        self.broken: set[str] = set()
        self.calls: list[tuple[str, list[str]]] = []

    def __call__(self, inventory: Path, remote: Remote, run_dir: Path,
                 progress: Progress) -> list[HostOutcome]:
        hosts = remote.pattern.split(":")
        self.calls.append((remote.args[0], hosts))
        return [self._one(h, remote.args) for h in hosts]

    def _one(self, host: str, args: list[str]) -> HostOutcome:
        if args[0] == "deploy":
            if host in self.broken:
                return HostOutcome(host, Reach.ANSWERED, {"ok": False, "failed_step": "build",
                                                          "error": "npm run build failed"}, 1)
            previous, self.active[host] = self.active[host], "r-new"
            return HostOutcome(host, Reach.ANSWERED,
                               {"ok": True, "release": "r-new", "previous": previous}, 0)
        if args[0] == "rollback":
            self.active[host] = args[1]
            return HostOutcome(host, Reach.ANSWERED, {"ok": True, "active": args[1]}, 0)
        return HostOutcome(host, Reach.ANSWERED, {"status": "ok", "verdict": "all good"}, 0)


def _settings(tmp_path: Path, policy: str = "hold") -> Settings:
    return Settings.model_validate({"state_dir": tmp_path, "fleet": {
        "waves": [1, 2, "100%"], "soak_s": 5, "halt_threshold": 1, "halt_policy": policy}})


def _rollout(fleet: FakeFleet, clock: FakeClock) -> rollout.Rollout:
    return rollout.Rollout(Path("inventory.ini"), runner=fleet, sleep=clock.sleep,
                           hosts_of=lambda _inventory, _pattern: list(HOSTS))


def test_all_healthy_puts_every_host_on_the_new_release(tmp_path: Path) -> None:
    fleet, clock = FakeFleet(), FakeClock()
    record = rollout.start(_settings(tmp_path), _rollout(fleet, clock), "main")
    assert record.state is RunState.DONE
    assert record.waves == [["h1"], ["h2", "h3"], ["h4"]]
    assert set(fleet.active.values()) == {"r-new"}
    assert clock.slept == [5, 5, 5]  # a soak after each wave
    assert [c[0] for c in fleet.calls] == ["deploy", "health"] * 3
    assert records.load(tmp_path, record.run_id).state is RunState.DONE


def test_hold_halts_after_the_failing_wave_and_leaves_the_split(tmp_path: Path) -> None:
    fleet, clock = FakeFleet(), FakeClock()
    fleet.broken = {"h3"}
    record = rollout.start(_settings(tmp_path), _rollout(fleet, clock), "main")
    assert record.state is RunState.HALTED and record.wave == 1
    assert record.split() == {"deployed": ["h1", "h2"], "failed": ["h3"], "pending": ["h4"]}
    assert fleet.active == {"h1": "r-new", "h2": "r-new", "h3": "r-old", "h4": "r-old"}
    assert "build: npm run build failed" in (record.hosts["h3"].error or "")


def test_converge_rolls_the_switched_hosts_back(tmp_path: Path) -> None:
    fleet, clock = FakeFleet(), FakeClock()
    fleet.broken = {"h3"}
    record = rollout.start(_settings(tmp_path, "converge"), _rollout(fleet, clock), "main")
    assert record.state is RunState.HALTED
    assert set(fleet.active.values()) == {"r-old"}
    assert record.hosts["h1"].state is HostState.ROLLED_BACK


def test_resume_after_the_fix_finishes_without_redeploying_healthy_hosts(
        tmp_path: Path) -> None:
    fleet, clock = FakeFleet(), FakeClock()
    fleet.broken = {"h3"}
    settings = _settings(tmp_path)
    halted = rollout.start(settings, _rollout(fleet, clock), "main")
    fleet.broken.clear()
    fleet.calls.clear()
    done = rollout.resume(settings, _rollout(fleet, clock), halted.run_id)
    assert done.state is RunState.DONE and done.run_id == halted.run_id
    assert set(fleet.active.values()) == {"r-new"}
    assert [c for c in fleet.calls if c[0] == "deploy"] == [("deploy", ["h3"]),
                                                           ("deploy", ["h4"])]
    with pytest.raises(UsageError, match="has finished"):
        rollout.resume(settings, _rollout(fleet, clock), halted.run_id)


def test_a_host_unhealthy_after_the_soak_halts_the_run(tmp_path: Path) -> None:
    fleet, clock = FakeFleet(), FakeClock()
    answer = fleet._one

    def sick_canary(host: str, args: list[str]) -> HostOutcome:
        if args[0] == "health" and host == "h1":
            return HostOutcome(host, Reach.ANSWERED, {"status": "critical", "verdict": "503"}, 2)
        return answer(host, args)

    fleet._one = sick_canary  # type: ignore[method-assign]
    record = rollout.start(_settings(tmp_path), _rollout(fleet, clock), "main")
    assert record.state is RunState.HALTED and record.wave == 0
    assert "not healthy after the soak: critical" in (record.hosts["h1"].error or "")
    assert fleet.active["h2"] == "r-old"


def test_the_fleet_lock_refuses_a_second_run_and_names_the_holder(tmp_path: Path) -> None:
    fleet, clock = FakeFleet(), FakeClock()
    held = records.take_lock(tmp_path, "fleet deploy", "RUN-A")
    try:
        with pytest.raises(LockHeld, match="RUN-A"):
            rollout.start(_settings(tmp_path), _rollout(fleet, clock), "main")
    finally:
        held.release()
    assert fleet.calls == []
