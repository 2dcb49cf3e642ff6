"""Fleet health and the commands sent to every host at once (rollback, recover, bundle): each
host's own vmkeeper answers in JSON, this module only combines them. The plan: fleet/plan.py."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from vmkeeper.fleet.records import new_run_id, run_dir
from vmkeeper.fleet.runner import FleetRunner, HostOutcome, Reach, Remote, ansible_run
from vmkeeper.progress import Progress, silent
from vmkeeper.settings import Settings


class FleetStatus(str, Enum):
    OK = "ok"
    WARN = "warn"
    CRITICAL = "critical"
    UNKNOWN = "unknown"
    UNREACHABLE = "unreachable"


# The worst host decides the fleet's status; an unreachable host is an outage to a monitor.
_RANK = {FleetStatus.OK: 0, FleetStatus.WARN: 1, FleetStatus.UNKNOWN: 2,
         FleetStatus.UNREACHABLE: 3, FleetStatus.CRITICAL: 4}
_EXIT = {FleetStatus.OK: 0, FleetStatus.WARN: 1, FleetStatus.CRITICAL: 2,
         FleetStatus.UNKNOWN: 3, FleetStatus.UNREACHABLE: 2}


@dataclass(frozen=True)
class HostHealth:
    host: str
    status: FleetStatus
    verdict: str
    active_release: str | None = None
    broken_layer: str | None = None
    apps_online: int | None = None
    disk_free_pct: float | None = None
    memory_available_pct: float | None = None


@dataclass(frozen=True)
class FleetHealth:
    status: FleetStatus
    hosts: list[HostHealth]
    run_id: str
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return _EXIT[self.status]


def _check(data: dict[str, Any], name: str) -> dict[str, Any]:
    for check in data.get("checks") or []:
        if isinstance(check, dict) and name in str(check.get("name", "")):
            return check
    return {}


def host_health(outcome: HostOutcome) -> HostHealth:
    """One host's row from its ``vmkeeper health --json`` answer."""
    if outcome.reach is Reach.UNREACHABLE:
        return HostHealth(outcome.host, FleetStatus.UNREACHABLE, outcome.message or "unreachable")
    data = outcome.data
    if outcome.reach is not Reach.ANSWERED or data is None:
        return HostHealth(outcome.host, FleetStatus.UNKNOWN,
                          outcome.message or "vmkeeper printed no JSON")
    try:
        status = FleetStatus(str(data.get("status")))
    except ValueError:
        status = FleetStatus.UNKNOWN
    checks = [c for c in data.get("checks") or [] if isinstance(c, dict)]
    broken = data.get("first_broken_layer")
    online = sum(1 for c in checks if str(c.get("name", "")).startswith("pm2")
                 and c.get("status") == "ok")
    return HostHealth(
        outcome.host, status, str(data.get("verdict") or ""),
        active_release=_active_release(data), broken_layer=str(broken) if broken else None,
        apps_online=online, disk_free_pct=_free(_check(data, "disk:/").get("observed")),
        memory_available_pct=_number(_check(data, "memory").get("observed")))


def _active_release(data: dict[str, Any]) -> str | None:
    value = data.get("active_release") or _check(data, "release").get("observed")
    return str(value) if value else None


def _free(value: Any) -> float | None:
    used = _number(value, "used_pct")
    return None if used is None else round(100 - used, 1)


def _number(value: Any, key: str = "available_pct") -> float | None:
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, dict) and isinstance(value.get(key), int | float):
        return float(value[key])
    return None


def fleet_health(settings: Settings, inventory: Path, *, pattern: str = "all",
                 runner: FleetRunner = ansible_run, progress: Progress = silent) -> FleetHealth:
    """Every matched host's health, in parallel (``fleet.forks`` at a time)."""
    import time

    started = time.monotonic()
    run_id = new_run_id()
    outcomes = runner(inventory, remote_for(settings, ["health", "--json"], pattern),
                      run_dir(settings.state_dir, run_id), progress)
    rows = [host_health(o) for o in outcomes]
    status = max((r.status for r in rows), key=lambda s: _RANK[s], default=FleetStatus.UNKNOWN)
    return FleetHealth(status, rows, run_id, time.monotonic() - started)


def remote_for(settings: Settings, args: list[str], pattern: str) -> Remote:
    fleet = settings.fleet
    return Remote(args, pattern=pattern, forks=fleet.forks, timeout_s=fleet.timeout_s,
                  remote_bin=fleet.remote_bin)


@dataclass(frozen=True)
class BroadcastResult:
    """A command run on every host at once (rollback, recover, bundle): each host's answer."""

    command: str
    ok: bool
    run_id: str
    hosts: list[dict[str, Any]]


def broadcast(settings: Settings, inventory: Path, args: list[str], *, pattern: str = "all",
              runner: FleetRunner = ansible_run, progress: Progress = silent) -> BroadcastResult:
    run_id = new_run_id()
    outcomes = runner(inventory, remote_for(settings, args, pattern),
                      run_dir(settings.state_dir, run_id), progress)
    rows = [{"host": o.host, "reach": o.reach.value, "ok": _ok(o), "result": o.data,
             "error": o.message or None} for o in outcomes]
    return BroadcastResult(" ".join(args), all(r["ok"] for r in rows), run_id, rows)


def _ok(outcome: HostOutcome) -> bool:
    if outcome.reach is not Reach.ANSWERED:
        return False
    data = outcome.data or {}
    return bool(data.get("ok", outcome.rc in (0, None)))
