"""Rolling deploys over real Ansible and real SSH to real vmkeeper hosts.

Real: the controller is `vmkeeper fleet …` as its own process; ansible-core and ansible-runner
reach every host through a real OpenSSH server on loopback (its own host key, key-only login,
host keys checked); on each host its own vmkeeper runs `deploy --json` for real — git fetch
and archive, `npm ci` and `npm run build` of the zero-dependency fixture frontend, the
zero-downtime switch through that host's own Apache, `pm2 save` — then `health --json`, and
`rollback` for converge. What the hosts share to stay cheap (tests/integration/fleet_hosts.py):
four inventory hosts are aliases of one sshd, and their frontends run in the session sandbox's
PM2 daemon beside its backend apps, so each wave holds one host. The failing host's build is
broken in its own settings file, as an operator would find it.

Cases of issue 17: all healthy → every wave advances (the module's baseline, then plan and
health read each host's release); host 3 fails → `hold` halts and leaves the split, `--resume`
after the fix finishes; `converge` rolls the switched hosts back to their previous release
(on two of the hosts, to keep the module short). The fleet lock and an unreachable host are
in test_fleet.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import TEST_BASE_PORT, SandboxHandle
from tests.integration.deploy_support import DeployBed
from tests.integration.fleet_hosts import (
    FleetHost,
    active_release,
    make_hosts,
    remove_hosts,
    set_broken,
)
from tests.integration.sshd import VMKEEPER, Sshd, fleet_cli
from tests.support.apache_dirs import apache_reachable
from vmkeeper import flock
from vmkeeper.releases import lock

pytestmark = pytest.mark.slow


@dataclass
class Fleet:
    sandbox: SandboxHandle
    bed: DeployBed  # the origin every host pulls from, and a developer's clone to commit in
    hosts: list[FleetHost]
    control: Path
    baseline: dict[str, Any]  # the first fleet deploy's record
    baseline_sha: str = ""

    def host(self, name: str) -> FleetHost:
        return next(h for h in self.hosts if h.name == name)

    def commit(self, message: str) -> str:
        return self.bed.commit(message)

    def deploy(self, *args: str) -> tuple[int, dict[str, Any]]:
        result = fleet_cli(self.control, "deploy", "--json", *args)
        assert result.stdout.strip(), result.stderr
        data: dict[str, Any] = json.loads(result.stdout)
        return result.returncode, data

    def releases(self) -> dict[str, str | None]:
        return {h.name: active_release(h) for h in self.hosts}


def _control(folder: Path, inventory: Path) -> Path:
    config = folder / "control.toml"
    config.write_text(f'state_dir = "{folder / "control-state"}"\n[fleet]\n'
                      f'remote_bin = "{VMKEEPER}"\ninventory = "{inventory}"\n'
                      "timeout_s = 180\nforks = 10\nwaves = [1]\nsoak_s = 0\n"
                      "halt_threshold = 1\nmin_free_mb = 100\n")
    return config


@pytest.fixture(scope="module")
def fleet(sandbox: SandboxHandle, sshd: Sshd) -> Iterator[Fleet]:
    with apache_reachable("vmkeeper-fleet-") as folder:
        bed = DeployBed(sandbox, folder / "bed", cli=lambda *a: None)  # type: ignore[arg-type,return-value]
        bed.setup()
        hosts = make_hosts(sandbox, folder, bed.origin, TEST_BASE_PORT, 4)
        try:
            inventory = sshd.inventory(folder / "inventory.ini",
                                       {h.name: h.config for h in hosts})
            made = Fleet(sandbox, bed, hosts, _control(folder, inventory), {})
            made.baseline_sha = made.commit("baseline")
            code, made.baseline = made.deploy("--branch", "main")
            assert code == 0, made.baseline
            yield made
        finally:
            remove_hosts(sandbox, hosts)


def test_all_healthy_every_wave_advances_and_every_host_runs_the_new_release(
        fleet: Fleet) -> None:
    record = fleet.baseline
    assert record["state"] == "done"
    assert record["waves"] == [["host1"], ["host2"], ["host3"], ["host4"]]
    live = fleet.releases()
    for name, host in record["hosts"].items():
        assert host["state"] == "deployed", host
        assert live[name] == host["release"]  # what PM2 runs on that host, not what was said
        assert host["release"].endswith(fleet.baseline_sha[:12])


def test_health_and_plan_read_each_hosts_release_and_its_live_lock(fleet: Fleet) -> None:
    live = fleet.releases()
    health = json.loads(fleet_cli(fleet.control, "health", "--json").stdout)
    assert {row["host"]: row["active_release"] for row in health["hosts"]} == live
    assert all(row["status"] in ("ok", "warn") for row in health["hosts"]), health
    # host2's deploy lock held now (as a running deploy holds it), host3's left by a killed one.
    host2, host3 = fleet.host("host2").settings, fleet.host("host3").settings
    (host3.releases.root / lock.LOCK_NAME).write_text(
        flock.Holder(999_999, "deploy", "2026-01-01T00:00:00Z").to_json())
    held = flock.take(host2.releases.root / lock.LOCK_NAME, "deploy", extra={"branch": "hotfix"})
    try:
        result = fleet_cli(fleet.control, "plan", "deploy", "--branch", "main", "--json")
    finally:
        held.release()
    plan = json.loads(result.stdout)
    rows = {row["host"]: row for row in plan["hosts"]}
    assert result.returncode == 1  # a precheck stops host2
    assert {name: row["current_release"] for name, row in rows.items()} == live
    assert "branch hotfix" in rows["host2"]["lock_holder"]
    assert [c for c in rows["host2"]["prechecks"] if "deploy lock" in c]
    for name in ("host1", "host3", "host4"):
        assert rows[name]["prechecks"] == [], rows[name]
        assert rows[name]["vmkeeper_version"] == plan["controller_version"]
        assert rows[name]["current_sha"].startswith(live[name].rsplit("-", 1)[-1])
        assert rows[name]["target_sha"] == fleet.baseline_sha  # the remote's, via ls-remote


def test_hold_halts_after_host3_and_resume_after_the_fix_finishes(fleet: Fleet) -> None:
    before = fleet.releases()
    sha = fleet.commit("release two")
    set_broken(fleet.sandbox, fleet.host("host3"), True)
    code, held = fleet.deploy("--branch", "main")
    after = fleet.releases()
    assert code == 1 and held["state"] == "halted", held
    assert held["wave"] == 2
    split = {state: sorted(names) for state, names in _split(held).items()}
    assert split == {"deployed": ["host1", "host2"], "failed": ["host3"], "pending": ["host4"]}
    assert "cannot build" in held["hosts"]["host3"]["error"]
    for name in ("host1", "host2"):
        assert after[name] is not None and after[name].endswith(sha[:12])
    assert (after["host3"], after["host4"]) == (before["host3"], before["host4"])
    runs = json.loads(fleet_cli(fleet.control, "runs", "--json").stdout)["runs"]
    assert runs[0]["run_id"] == held["run_id"] and runs[0]["state"] == "halted"

    set_broken(fleet.sandbox, fleet.host("host3"), False)
    code, done = fleet.deploy("--resume", held["run_id"])
    final = fleet.releases()
    assert code == 0 and done["state"] == "done", (done["halted_reason"], done["hosts"])
    assert all(release and release.endswith(sha[:12]) for release in final.values()), final
    assert (final["host1"], final["host2"]) == (after["host1"], after["host2"])  # not redone


def test_converge_rolls_the_switched_hosts_back_to_their_previous_release(
        fleet: Fleet) -> None:
    # Two hosts (--limit) keep it short: host2 switches, host3 fails, host2 goes back.
    before = fleet.releases()
    sha = fleet.commit("release three")
    set_broken(fleet.sandbox, fleet.host("host3"), True)
    try:
        code, record = fleet.deploy("--branch", "main", "--limit", "host2:host3",
                                    "--set=fleet.halt_policy=converge")
    finally:
        set_broken(fleet.sandbox, fleet.host("host3"), False)
    assert code == 1 and record["state"] == "halted" and record["policy"] == "converge"
    hosts = record["hosts"]
    assert {n: h["state"] for n, h in hosts.items()} == {"host2": "rolled_back",
                                                          "host3": "failed"}
    assert hosts["host2"]["release"].endswith(sha[:12])  # it was switched, then brought back
    assert hosts["host2"]["previous"] == before["host2"]
    assert fleet.releases() == before


def _split(record: dict[str, Any]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for name, host in record["hosts"].items():
        groups.setdefault(host["state"], []).append(name)
    return groups
