"""`vmkeeper health` and `vmkeeper status`: gather, judge, chain into a verdict."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from vmkeeper.adapters.pm2 import Pm2
from vmkeeper.health import checks as judge
from vmkeeper.health import facts as gathering
from vmkeeper.health.model import Check, HealthReport, Layer, worst
from vmkeeper.health.report import load_restarts, save_restarts, write_prometheus
from vmkeeper.health.verdict import diagnose
from vmkeeper.releases import store
from vmkeeper.settings import Settings
from vmkeeper.telemetry import record


def run_health(settings: Settings, *, prometheus: Path | None = None, remember: bool = True,
               pm2: Pm2 | None = None) -> HealthReport:
    """Every runbook check, concurrently; ``remember`` keeps restart counts for next time."""
    return health_look(settings, prometheus=prometheus, remember=remember, pm2=pm2)[1]


def health_look(settings: Settings, *, prometheus: Path | None = None, remember: bool = True,
                pm2: Pm2 | None = None) -> tuple[gathering.Facts, HealthReport]:
    """:func:`run_health` with the facts it judged (the CLI hands their figures on)."""
    facts, report = observe(settings, pm2=pm2, remember=remember)
    if prometheus is not None:
        write_prometheus(prometheus, report)
    return facts, report


def observe(settings: Settings, *, pm2: Pm2 | None = None, remember: bool = False,
            carried: gathering.Facts | None = None) -> tuple[gathering.Facts, HealthReport]:
    """The facts and the report judged on them; ``carried``: the heavy facts of an earlier
    look are reused instead of gathered (the watcher's cheap cycles, facts.HEAVY)."""
    started = time.monotonic()
    mode = gathering.supervisor_mode(settings)
    facts = gathering.gather(settings, previous_restarts=load_restarts(settings.state_dir),
                             pm2=pm2, mode=mode, carried=carried)
    report = report_from_checks(judge.evaluate(facts, settings, mode),
                                time.monotonic() - started, mode,
                                active_release=active_release_of(settings, facts))
    record.health(facts, report)  # a no-op unless this process exports (issue 15)
    if remember:
        save_restarts(settings.state_dir, report)
    return facts, report


def active_release_of(settings: Settings, facts: gathering.Facts) -> str | None:
    """The release the frontend's PM2 process runs from, read off the gathered snapshot."""
    snapshot = facts.pm2.value
    name = settings.apps.frontend.name
    app = next((a for a in (snapshot.apps or []) if a.name == name), None) if snapshot else None
    if app is None:
        return None
    return store.release_containing(settings.releases.root, app.cwd,
                                    settings.workspace.frontend_dir)


def report_from_checks(checks: list[Check], seconds: float, mode: str, *,
                       active_release: str | None = None) -> HealthReport:
    """The report of judged checks: the worst status and the chain's one diagnosis."""
    found = diagnose(checks, mode)
    return HealthReport(
        status=worst(c.status for c in checks),
        verdict=found.line,
        first_broken_layer=found.layer.value if found.layer and found.layer is not Layer.HOST
        else None,
        advice=found.advice,
        checks=checks,
        seconds=seconds,
        supervisor=mode,
        active_release=active_release,
    )


@dataclass(frozen=True)
class AppStatus:
    name: str
    role: str | None
    status: str
    pid: int | None
    cwd: str | None
    restarts: int
    memory_bytes: int | None
    ports: list[int]
    release: str | None


@dataclass(frozen=True)
class StatusReport:
    apps: list[AppStatus]
    pm2_daemon_pid: int | None
    supervisor: str
    proxy_port: int
    public_url: str
    active_release: str | None
    note: str | None


def run_status(settings: Settings, pm2: Pm2 | None = None) -> StatusReport:
    """The topology and each PM2 app's state, without ever starting a PM2 daemon."""
    pm2 = pm2 or gathering.health_pm2(settings)
    snapshot = gathering.pm2_snapshot(pm2)
    expected = {app.name: role for role, app in settings.app_roles().items()}
    # The media service is not one of the runbook's four apps, but where PM2 runs it (the
    # sandbox does) it is named and its port shown like the others.
    known = {**settings.app_roles(), "media": settings.apps.media}
    roles = {app.name: role for role, app in known.items()}
    ports = {role: ([app.port] if app.port else []) + list(app.extra_ports)
             for role, app in known.items()}
    apps: list[AppStatus] = []
    active: str | None = None
    seen = set()
    for app in snapshot.apps or []:
        role = roles.get(app.name)
        release = None
        if role == "frontend":
            release = store.release_containing(settings.releases.root, app.cwd,
                                               settings.workspace.frontend_dir)
            active = release
        seen.add(app.name)
        apps.append(AppStatus(app.name, role, app.status, app.pid,
                              str(app.cwd) if app.cwd else None, app.restarts,
                              app.memory_bytes, ports.get(role or "", []), release))
    for name, role in expected.items():
        if name not in seen:
            apps.append(AppStatus(name, role, "not running" if snapshot.apps is None
                                  else "missing", None, None, 0, None, ports.get(role, []), None))
    note = None if snapshot.daemon_pid else (
        "the PM2 daemon is not running (vmkeeper did not start one): run `vmkeeper recover`")
    return StatusReport(apps, snapshot.daemon_pid, gathering.supervisor_mode(settings),
                        settings.proxy.port, settings.public_url, active, note)
