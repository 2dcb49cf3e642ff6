"""Judging the gathered facts: pure functions from Facts and Settings to checks.

Each check says what it observed and what it expected, in the runbook's own terms
(401 from the API means alive; Apache's own 503 is not an error page of the app).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from vmkeeper.adapters import apache, http
from vmkeeper.adapters.host_commands import node_major
from vmkeeper.adapters.pm2 import Pm2App
from vmkeeper.gather import Got
from vmkeeper.health.facts import Facts, watched_ports
from vmkeeper.health.model import Cause, Check, Layer, Status
from vmkeeper.settings import Settings


def _gib(value: int) -> str:
    return f"{value / 1024**3:.1f} GiB"


def _mib(value: int | None) -> str:
    return "-" if value is None else f"{value / 1024**2:.0f} MiB"


def _level(value: float, warn: float, crit: float, *, higher_is_worse: bool = True) -> Status:
    if higher_is_worse:
        return Status.CRITICAL if value >= crit else Status.WARN if value >= warn else Status.OK
    return Status.CRITICAL if value <= crit else Status.WARN if value <= warn else Status.OK


def _unknown(name: str, got: Got[Any], layer: Layer, expected: object = None) -> Check:
    return Check(name, Status.UNKNOWN, f"could not check: {got.error}", None, expected, layer,
                 got.seconds, Cause.UNAVAILABLE)


# --------------------------------------------------------------------------------- host

def host_checks(facts: Facts, settings: Settings) -> list[Check]:
    h = settings.health
    checks: list[Check] = []
    if not facts.filesystems.ok or facts.filesystems.value is None:
        checks.append(_unknown("disk", facts.filesystems, Layer.HOST))
    else:
        for fs in facts.filesystems.value:
            used = fs.used_pct
            checks.append(Check(
                f"disk:{fs.mount}", _level(used, h.disk_warn_pct, h.disk_crit_pct),
                f"{fs.mount} {used:.0f}% used, {_gib(fs.bytes_free)} free",
                {"used_pct": round(used, 1), "free_bytes": fs.bytes_free},
                {"used_pct_below": h.disk_warn_pct}, Layer.HOST, facts.filesystems.seconds,
            ))
            inodes = fs.inodes_used_pct
            if inodes is not None:
                checks.append(Check(
                    f"inodes:{fs.mount}", _level(inodes, h.inode_warn_pct, h.inode_crit_pct),
                    f"{fs.mount} {inodes:.0f}% of inodes used",
                    {"used_pct": round(inodes, 1), "free": fs.inodes_free},
                    {"used_pct_below": h.inode_warn_pct}, Layer.HOST,
                ))
    memory = facts.memory.value
    if memory is None:
        checks.append(_unknown("memory", facts.memory, Layer.HOST))
        return checks
    available = memory.available_pct
    checks.append(Check(
        "memory", _level(available, h.mem_available_warn_pct, h.mem_available_crit_pct,
                         higher_is_worse=False),
        f"{_gib(memory.available)} of {_gib(memory.total)} available ({available:.0f}%)",
        {"available_pct": round(available, 1), "available_bytes": memory.available,
         "total_bytes": memory.total},
        {"available_pct_above": h.mem_available_warn_pct}, Layer.HOST,
    ))
    swap = memory.swap_used_pct
    checks.append(Check(
        "swap",
        Status.OK if swap is None else _level(swap, h.swap_used_warn_pct, h.swap_used_crit_pct),
        "no swap configured" if swap is None else
        f"{_gib(memory.swap_used)} of {_gib(memory.swap_total)} swap used ({swap:.0f}%)",
        {"used_pct": None if swap is None else round(swap, 1)},
        {"used_pct_below": h.swap_used_warn_pct}, Layer.HOST,
    ))
    return checks


# --------------------------------------------------------------------------------- http

def _probe_check(name: str, got: Got[http.Probe], expected: int, layer: Layer,
                 meaning: str) -> Check:
    result = got.value
    if result is None:
        return _unknown(f"http:{name}", got, layer, expected)
    observed = {"status": result.status, "server": result.server, "error":
                result.error.value if result.error else None, "seconds": round(result.seconds, 3)}
    role = {"role": name}
    if result.status == expected:
        return Check(f"http:{name}", Status.OK, f"{result.url} → {expected} ({meaning})",
                     observed, expected, layer, result.seconds, details=role)
    if result.error is not None:
        reason = Cause(result.error.value)
        summary = f"{result.url} → {http.describe(result)}"
    elif result.proxy_unavailable:
        reason = Cause.PROXY_503
        summary = f"{result.url} → 503 from Apache itself: its upstream is unreachable"
    else:
        reason = Cause.STATUS
        summary = f"{result.url} → {result.status}, expected {expected}"
        if result.status and result.status >= 500:
            summary += " (an error of the app behind it)"
    return Check(f"http:{name}", Status.CRITICAL, summary, observed, expected, layer,
                 result.seconds, reason, details=role)


def http_checks(facts: Facts, settings: Settings) -> list[Check]:
    checks: list[Check] = []
    apps = settings.apps
    layers = {"frontend": Layer.PORTS, "backend": Layer.PORTS, "proxy": Layer.APACHE,
              "public": Layer.PUBLIC}
    meanings = {"frontend": "the frontend serves", "backend": "alive, no JWT",
                "proxy": "Apache proxies", "public": "the site answers"}
    for name, got in facts.probes.items():
        expected = 200
        if name in ("frontend", "backend"):
            expected = getattr(apps, name).expected_status or 200
        checks.append(_probe_check(name, got, expected, layers[name], meanings[name]))
    return checks


# --------------------------------------------------------------------------------- ports

def port_checks(facts: Facts, settings: Settings) -> list[Check]:
    ports = watched_ports(settings)
    if facts.listeners.value is None:
        return [_unknown("ports", facts.listeners, Layer.PORTS)]
    by_port: dict[int, list[tuple[int | None, str | None]]] = {}
    for item in facts.listeners.value:
        by_port.setdefault(item.port, []).append((item.pid, item.process))
    snapshot = facts.pm2.value
    trees = snapshot.trees if snapshot else {}
    names = {role: app.name for role, app in settings.app_roles().items()}
    checks: list[Check] = []
    for port, role in sorted(ports.items()):
        owners = by_port.get(port, [])
        # Telemetry does not serve the site: its ports missing is a warning, not an outage.
        missing_status = Status.WARN if role == "telemetry" else Status.CRITICAL
        layer = Layer.APACHE if role == "proxy" else Layer.PORTS
        name = f"port:{port}"
        if not owners:
            checks.append(Check(name, missing_status, f"nothing listens on {port} ({role})",
                                None, f"{role} listening", layer, reason=Cause.NOT_LISTENING,
                                details={"role": role, "port": port}))
            continue
        pid, process = owners[0]
        owner = f"{process or '?'} (pid {pid})" if pid else "an owner this user cannot see"
        app_name = names.get(role)
        tree = trees.get(app_name or "", set())
        if role != "proxy" and pid and facts.orphans.get(pid) == app_name:
            checks.append(Check(
                name, Status.CRITICAL,
                f"{port} is held by {owner}, a server {app_name}'s killed wrapper left behind "
                "(in its folder, outside PM2's tree): PM2's own restarts cannot bind",
                {"pid": pid, "process": process}, f"{app_name} listening", layer,
                reason=Cause.ORPHANED, details={"role": role, "port": port, "pid": pid,
                                                "app": app_name},
            ))
            continue
        if role != "proxy" and pid and snapshot and snapshot.apps is not None and pid not in tree:
            checks.append(Check(
                name, Status.CRITICAL,
                f"{port} is held by {owner}, not by PM2's {app_name}",
                {"pid": pid, "process": process}, f"{app_name} listening", layer,
                reason=Cause.FOREIGN_OWNER, details={"role": role, "port": port, "pid": pid},
            ))
            continue
        checks.append(Check(name, Status.OK, f"{port} ({role}) listened on by {owner}",
                            {"pid": pid, "process": process}, f"{role} listening", layer,
                            details={"role": role, "port": port, "pid": pid}))
    return checks


# --------------------------------------------------------------------------------- PM2

def _uptime(app: Pm2App, now: float) -> float | None:
    if not app.started_at_ms or not app.online:
        return None
    return max(now - app.started_at_ms / 1000, 0.0)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def pm2_checks(facts: Facts, settings: Settings) -> list[Check]:
    snapshot = facts.pm2.value
    if snapshot is None:
        return [_unknown("pm2", facts.pm2, Layer.APPS)]
    expected = {app.name: role for role, app in settings.app_roles().items()}
    if snapshot.apps is None:
        return [Check(f"pm2:{name}", Status.CRITICAL,
                      f"{name} is not running: the PM2 daemon is down", None, "online",
                      Layer.APPS, reason=Cause.DAEMON_DOWN) for name in expected]
    live = {app.name: app for app in snapshot.apps}
    checks: list[Check] = []
    for name in expected:
        app = live.get(name)
        if app is None:
            checks.append(Check(f"pm2:{name}", Status.CRITICAL, f"{name} is not in PM2's list",
                                None, "online", Layer.APPS, reason=Cause.MISSING))
            continue
        uptime = _uptime(app, facts.now)
        observed = {"status": app.status, "pid": app.pid, "uptime_s": uptime,
                    "restarts": app.restarts, "unstable_restarts": app.unstable_restarts,
                    "memory_bytes": app.memory_bytes}
        line = (f"{name} {app.status}, pid {app.pid or '-'}, up {_duration(uptime)}, "
                f"{app.restarts} restarts, {_mib(app.memory_bytes)}")
        previous = facts.previous_restarts.get(name)
        if not app.online:
            looping = app.status in ("errored", "waiting restart", "launching") or \
                app.unstable_restarts > 0
            reason = Cause.CRASH_LOOP if looping else Cause.STOPPED
            summary = (f"{name} is crash-looping ({app.status} after {app.restarts} restarts)"
                       if looping else f"{name} is {app.status}")
            checks.append(Check(f"pm2:{name}", Status.CRITICAL, summary, observed, "online",
                                Layer.APPS, reason=reason))
        elif previous is not None and app.restarts > previous:
            checks.append(Check(f"pm2:{name}", Status.WARN,
                                f"{line}: flapping, restarts grew from {previous}",
                                observed, "online, restarts steady", Layer.APPS,
                                reason=Cause.FLAPPING))
        else:
            checks.append(Check(f"pm2:{name}", Status.OK, line, observed, "online", Layer.APPS))
    optional = {settings.apps.media.name}
    extra = sorted(set(live) - set(expected) - optional)
    if extra:
        from vmkeeper.releases.handover import temp_name

        switching = temp_name(settings)
        said = [f"{name} (the zero-downtime switch's temporary app: a deploy or rollback is "
                "switching, or was killed mid-switch — the next one, or `vmkeeper recover` "
                "when the site is down, removes it)" if name == switching else name
                for name in extra]
        checks.append(Check("pm2:unexpected", Status.WARN,
                            f"PM2 also runs apps the settings do not expect: {', '.join(said)}",
                            extra, sorted(expected), Layer.APPS, reason=Cause.UNEXPECTED))
    return checks


def supervisor_check(facts: Facts, settings: Settings, mode: str) -> Check:
    snapshot = facts.pm2.value
    daemon = snapshot.daemon_pid if snapshot else None
    if mode == "systemd" and facts.unit is not None:
        unit = facts.unit.value
        if unit is None:
            return _unknown("supervisor", facts.unit, Layer.SUPERVISOR)
        observed = {"unit": unit.unit, "active_state": unit.active_state,
                    "sub_state": unit.sub_state, "result": unit.result,
                    "main_pid": unit.main_pid, "restarts": unit.restarts, "daemon_pid": daemon}
        if not unit.exists:
            return Check("supervisor", Status.CRITICAL, f"unit {unit.unit} is not installed",
                         observed, "active", Layer.SUPERVISOR, reason=Cause.UNIT_MISSING)
        if unit.active and daemon:
            return Check("supervisor", Status.OK,
                         f"{unit.unit} active ({unit.sub_state}), PM2 daemon pid {daemon}",
                         observed, "active", Layer.SUPERVISOR)
        reason = (Cause.OOM_KILL if unit.oom_killed else
                  Cause.START_LIMIT_HIT if unit.start_limit_hit else Cause.UNIT_DOWN)
        summary = f"{unit.unit} {unit.active_state} ({unit.sub_state}), result {unit.result}"
        if unit.active and not daemon:
            summary = f"{unit.unit} is active but no PM2 daemon runs"
            reason = Cause.DAEMON_DOWN
        if unit.oom_killed:
            summary += ": the kernel OOM killer took it down"
        elif unit.start_limit_hit:
            summary += ": systemd gave up restarting it (needs reset-failed)"
        return Check("supervisor", Status.CRITICAL, summary, observed, "active",
                     Layer.SUPERVISOR, reason=reason)
    if daemon:
        return Check("supervisor", Status.OK, f"PM2 daemon running (pid {daemon})",
                     {"daemon_pid": daemon}, "running", Layer.SUPERVISOR)
    return Check("supervisor", Status.CRITICAL, "PM2 daemon not running",
                 {"daemon_pid": None}, "running", Layer.SUPERVISOR, reason=Cause.DAEMON_DOWN)


def dump_check(facts: Facts, settings: Settings) -> Check:
    path = settings.pm2.home / "dump.pm2"
    expected = [app.name for app in settings.app_roles().values()]
    if facts.dump.value is None:
        absent = "No such file" in (facts.dump.error or "")
        reason = Cause.DUMP_MISSING if absent else Cause.DUMP_BAD
        return Check("dump", Status.CRITICAL,
                     f"{path} cannot be used: {facts.dump.error}", None, expected,
                     Layer.DUMP, reason=reason)
    names = [app.name for app in facts.dump.value]
    missing = [name for name in expected if name not in names]
    if not names:
        return Check("dump", Status.CRITICAL, f"{path} lists no apps: a resurrect brings back "
                     "nothing", names, expected, Layer.DUMP, reason=Cause.DUMP_EMPTY)
    if missing:
        return Check("dump", Status.CRITICAL, f"{path} lacks {', '.join(missing)}", names,
                     expected, Layer.DUMP, reason=Cause.DUMP_INCOMPLETE,
                     details={"missing": missing})
    frontend = settings.apps.frontend.name
    saved = next(app for app in facts.dump.value if app.name == frontend)
    snapshot = facts.pm2.value
    live = next((a for a in (snapshot.apps or []) if a.name == frontend), None) \
        if snapshot else None
    if live is not None and live.cwd and saved.cwd != live.cwd:
        return Check("dump", Status.WARN,
                     f"{path} would start {frontend} from {saved.cwd}, but the active release "
                     f"is {live.cwd}: run `pm2 save`", {"frontend_cwd": str(saved.cwd)},
                     {"frontend_cwd": str(live.cwd)}, Layer.DUMP, reason=Cause.DUMP_STALE)
    return Check("dump", Status.OK, f"{path} lists all {len(expected)} apps"
                 + (f"; {frontend} from the active release" if live else ""),
                 names, expected, Layer.DUMP)


def node_checks(facts: Facts, settings: Settings) -> list[Check]:
    required = settings.node_major
    checks: list[Check] = []
    version = facts.node_version.value
    if version is None:
        checks.append(_unknown("node", facts.node_version, Layer.RUNTIME, f"v{required}.x"))
    else:
        status = Status.OK if node_major(version) == required else Status.WARN
        requires = "" if status is Status.OK else f", the project requires {required}.x"
        checks.append(Check("node", status, f"node -v → {version}{requires}",
                            version, f"v{required}.x", Layer.RUNTIME))
    snapshot = facts.pm2.value
    apps = (snapshot.apps if snapshot and snapshot.apps is not None else facts.dump.value) or []
    wrong = {a.name: a.node_version for a in apps
             if a.node_version and node_major(a.node_version) != required}
    if apps:
        seen = sorted({a.node_version for a in apps if a.node_version})
        checks.append(Check(
            "node:pm2", Status.WARN if wrong else Status.OK,
            ("PM2 runs " + ", ".join(f"{n} on Node {v}" for n, v in wrong.items())
             + f"; the project requires {required}.x") if wrong
            else f"PM2 runs every app on Node {', '.join(seen) or '?'}",
            {a.name: a.node_version for a in apps}, f"{required}.x", Layer.RUNTIME,
            reason=Cause.NODE_MISMATCH if wrong else None,
        ))
    return checks


_RETRY = re.compile(r"\bretry=(\d+)", re.IGNORECASE)


def proxy_config_check(facts: Facts, settings: Settings) -> Check:
    lines = facts.proxy_config.value
    if lines is None:
        return _unknown("proxy:retry", facts.proxy_config, Layer.APACHE, "retry=0")
    passes = [line for line in lines if line.lower().startswith(("proxypass ", "balancermember "))
              and " !" not in line]
    sticky = []
    for line in passes:
        match = _RETRY.search(line)
        if match is None or int(match.group(1)) > 0:
            sticky.append(line)
    if not passes:
        return Check("proxy:retry", Status.UNKNOWN,
                     f"no ProxyPass found in {settings.proxy.config}", [], "retry=0",
                     Layer.APACHE, reason=Cause.NO_PROXYPASS)
    if sticky:
        return Check(
            "proxy:retry", Status.WARN,
            f"{len(sticky)} ProxyPass line(s) keep an unreachable backend in error for `retry` "
            "seconds (default 60): a 503 can outlive its cause by a minute; add retry=0",
            sticky, "retry=0", Layer.APACHE, reason=Cause.STICKY_RETRY,
        )
    return Check("proxy:retry", Status.OK, "every ProxyPass retries at once (retry=0)",
                 passes, "retry=0", Layer.APACHE)


def route_checks(facts: Facts, settings: Settings) -> list[Check]:
    """Where the zero-downtime switch's map sends the site. A deploy or rollback cut off
    mid-switch (SIGKILL, a reboot) can leave it on the spare port: fine while the temporary
    app serves there, an outage once nothing does (after a reboot PM2 resurrects only the
    saved apps) — Apache answers 503 while frontend-dev runs on FRONT_PORT."""
    got = facts.route
    if got is None:
        return []
    if got.value is None:
        return [_unknown("proxy:route", got, Layer.APACHE)]
    if not got.value.by_map:
        return []  # the runbook's ProxyPass to FRONT_PORT: nothing moves
    front, spare = settings.apps.frontend.port, settings.releases.spare_port
    port = got.value.port
    where = apache.map_path(settings.proxy.frontend_include)
    if port == front:
        return [Check("proxy:route", Status.OK, f"Apache routes the site to {port} "
                      f"({settings.apps.frontend.name})", port, front, Layer.APACHE)]
    serving = port is not None and any(
        listener.port == port for listener in facts.listeners.value or [])
    if port == spare and serving:
        return [Check("proxy:route", Status.WARN,
                      f"a switch was cut off: Apache routes the site to the spare port {port}, "
                      "where the temporary app serves it; the next deploy, rollback or "
                      "`vmkeeper recover` finishes it", port, front, Layer.APACHE,
                      reason=Cause.MISROUTED)]
    named = f"port {port}" if port is not None else f"no port ({where} names none)"
    return [Check("proxy:route", Status.CRITICAL,
                  f"Apache routes the site to {named}, where nothing serves (a switch cut off "
                  f"mid-way); {settings.apps.frontend.name} belongs on {front}", port, front,
                  Layer.APACHE, reason=Cause.MISROUTED)]


def heavy_check(name: str) -> bool:
    """Whether the check is judged on the heavy facts (facts.HEAVY): disk, inodes, the dump,
    Node's version, Apache's ProxyPass retry."""
    return name in ("disk", "dump", "node", "proxy:retry") or name.startswith(
        ("disk:", "inodes:"))


def evaluate(facts: Facts, settings: Settings, mode: str) -> list[Check]:
    judges: list[Callable[[], list[Check]]] = [
        lambda: http_checks(facts, settings),
        lambda: port_checks(facts, settings),
        lambda: pm2_checks(facts, settings),
        lambda: [supervisor_check(facts, settings, mode)],
        lambda: [dump_check(facts, settings)],
        lambda: [proxy_config_check(facts, settings)],
        lambda: route_checks(facts, settings),
        lambda: node_checks(facts, settings),
        lambda: host_checks(facts, settings),
    ]
    return [check for judge in judges for check in judge()]

