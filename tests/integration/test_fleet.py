"""Real Ansible over real SSH: a loopback sshd, inventory hosts that are aliases of it, each
host's own vmkeeper answering `health --json`; one host on a closed port."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import TEST_BASE_PORT
from tests.integration.sshd import VMKEEPER, Sshd, fleet_cli, host_configs
from vmkeeper import proc
from vmkeeper.fleet import records

pytestmark = pytest.mark.slow



def _control(tmp_path: Path, inventory: Path) -> Path:
    config = tmp_path / "control.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[fleet]\n'
                      f'remote_bin = "{VMKEEPER}"\ninventory = "{inventory}"\n'
                      'timeout_s = 120\nforks = 10\n')
    return config


def _hosts(tmp_path: Path, count: int) -> dict[str, Path]:
    return host_configs(tmp_path, count, TEST_BASE_PORT)


def test_fleet_health_over_ssh_with_an_unreachable_host(sshd: Sshd, tmp_path: Path) -> None:
    inventory = sshd.inventory(tmp_path / "inventory.ini", _hosts(tmp_path, 4),
                               unreachable=("host5",))
    result = fleet_cli(_control(tmp_path, inventory), "health", "--json")
    report = json.loads(result.stdout)
    rows = {row["host"]: row for row in report["hosts"]}
    assert list(rows) == ["host1", "host2", "host3", "host4", "host5"]
    assert rows["host5"]["status"] == "unreachable"
    for name in ("host1", "host2", "host3", "host4"):
        assert rows[name]["status"] == "critical", rows[name]  # each host's own vmkeeper spoke
        assert rows[name]["broken_layer"]
    assert report["status"] == "critical"
    assert result.returncode == 2


def test_the_fleet_lock_refuses_a_second_run(sshd: Sshd, tmp_path: Path) -> None:
    inventory = sshd.inventory(tmp_path / "inventory.ini", _hosts(tmp_path, 4))
    config = _control(tmp_path, inventory)
    held = records.take_lock(tmp_path / "state", "fleet deploy", "RUN-FIRST")
    try:
        result = fleet_cli(config, "deploy", "--branch", "main")
    finally:
        held.release()
    assert result.returncode != 0
    assert "Another fleet run holds the fleet lock" in result.stderr
    assert "RUN-FIRST" in result.stderr
    assert not any((tmp_path / f"host{n}").exists() for n in range(1, 5))  # nothing ran


def test_ansible_reaches_the_hosts_by_their_own_key(sshd: Sshd, tmp_path: Path) -> None:
    # The sshd accepts the test's key and no password: a plain ssh proves the set-up itself.
    out = proc.run(["ssh", "-i", str(sshd.key), "-p", str(sshd.port), "-o", "BatchMode=yes",
                    "-o", f"UserKnownHostsFile={sshd.known_hosts}", "127.0.0.1", "echo", "hi"],
                   timeout=30)
    assert out.stdout.strip() == "hi"
