"""Host outcomes from ansible-runner events recorded from a real run (one host answering
`vmkeeper health --json` through Ansible, one unreachable)."""

from __future__ import annotations

from pathlib import Path

from vmkeeper.fleet.health import FleetStatus, host_health
from vmkeeper.fleet.runner import (
    Reach,
    Remote,
    command_line,
    fresh_ident,
    outcomes,
    recorded_events,
)

RUN = Path(__file__).parents[1] / "data" / "fleet" / "health-run"


def test_a_host_that_answered_and_one_that_could_not_be_reached() -> None:
    got = outcomes(recorded_events(RUN), ["h1", "h2", "h3"])
    assert [o.reach for o in got] == [Reach.ANSWERED, Reach.UNREACHABLE, Reach.MISSING]
    assert got[0].data is not None and got[0].data["status"] == "critical"
    assert got[0].rc == 2  # health exits 2 on critical; its JSON is read all the same
    assert "Connection refused" in got[1].message


def test_health_rows_from_the_parsed_json() -> None:
    got = outcomes(recorded_events(RUN), ["h1", "h2"])
    rows = [host_health(o) for o in got]
    assert rows[0].status is FleetStatus.CRITICAL
    assert rows[0].broken_layer == "dump"  # health's own first_broken_layer
    assert rows[0].apps_online == 0
    assert rows[0].memory_available_pct is not None
    assert rows[1].status is FleetStatus.UNREACHABLE


def test_the_command_is_templated_per_host_and_quoted() -> None:
    line = command_line(Remote(["deploy", "--branch", "feat x", "--json"]))
    assert "{{ vmkeeper_config | default('/etc/vmkeeper/vmkeeper.toml') }}" in line
    assert line.endswith("deploy --branch 'feat x' --json")


def test_a_resumed_wave_reads_its_own_events_not_the_halted_attempts(tmp_path: Path) -> None:
    assert fresh_ident(tmp_path) == "ansible"
    (tmp_path / "artifacts" / "ansible").mkdir(parents=True)
    assert fresh_ident(tmp_path) == "ansible-2"
    (tmp_path / "artifacts" / "ansible-2").mkdir()
    assert fresh_ident(tmp_path) == "ansible-3"
