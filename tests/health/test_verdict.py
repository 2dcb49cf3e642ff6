"""The layer-chain verdict and the checks, judged from synthetic facts (no process runs)."""

from __future__ import annotations

import dataclasses
import stat
import time
from pathlib import Path

from vmkeeper.adapters import host, http, systemd
from vmkeeper.adapters.pm2 import Pm2App, parse_jlist
from vmkeeper.gather import Got
from vmkeeper.health import checks, report
from vmkeeper.health.facts import Facts, Pm2Snapshot
from vmkeeper.health.model import Cause, HealthReport, Layer, Status, worst
from vmkeeper.health.verdict import diagnose
from vmkeeper.settings import Settings

DATA = Path(__file__).parents[1] / "data"
S = Settings()
APPS = parse_jlist((DATA / "pm2" / "jlist-healthy.json").read_text())
TREES = {a.name: {a.pid} for a in APPS if a.pid}


def _probe(url: str, status: int | None, *, server: str = "node", body: str = "",
           error: http.ProbeError | None = None) -> Got[http.Probe]:
    return Got(http.Probe(url, status, server, 0.01, error, None, body))


def _listeners(apps: list[Pm2App], ports: dict[int, str] | None = None) -> list[host.Listener]:
    pids = {a.name: a.pid for a in apps}
    ports = ports if ports is not None else {80: "apache2", 3001: "frontend-dev",
                                             3000: "backend-dev", 4317: "fl-telemetry",
                                             4318: "fl-telemetry"}
    return [host.Listener("127.0.0.1", port, pids.get(owner, 99), owner)
            for port, owner in ports.items()]


def facts(**change: object) -> Facts:
    base = Facts(
        filesystems=Got([host.FsUsage(Path("/"), "/", 100 * 2**30, 50 * 2**30, 1000, 900, 1)]),
        memory=Got(host.MemoryUsage(4 * 2**30, 2 * 2**30, 0, 0)),
        listeners=Got(_listeners(APPS)),
        probes={"frontend": _probe("http://127.0.0.1:3001/", 200),
                "backend": _probe("http://127.0.0.1:3000/api/auth/me", 401),
                "public": _probe("http://tbp.flatlogic.app/", 200, server="Apache/2.4"),
                "proxy": _probe("http://127.0.0.1:80/", 200, server="Apache/2.4")},
        pm2=Got(Pm2Snapshot(42, APPS, {a.name: {a.pid} for a in APPS if a.pid})),
        unit=None,
        dump=Got([dataclasses.replace(a, pid=None) for a in APPS]),
        node_version=Got("v20.20.2"),
        proxy_config=Got(["ProxyPass / http://127.0.0.1:3001/ retry=0"]),
        previous_restarts={},
        now=time.time(),
    )
    return dataclasses.replace(base, **change)  # type: ignore[arg-type]


def judge(f: Facts, mode: str = "pm2") -> tuple[Status, str, Layer | None]:
    found = checks.evaluate(f, S, mode)
    v = diagnose(found)
    return worst(c.status for c in found), v.line, v.layer


APACHE_503 = _probe("http://tbp.flatlogic.app/", 503, server="Apache/2.4.62",
                    body="<title>503 Service Unavailable</title> Service Unavailable")


def test_all_healthy_is_ok_and_names_no_layer() -> None:
    status, line, layer = judge(facts())
    assert status is Status.OK and layer is None and "Every layer answers" in line


def test_pm2_killed_names_the_supervisor_with_the_runbook_evidence() -> None:
    refused = _probe("http://127.0.0.1:3001/", None, error=http.ProbeError.REFUSED)
    f = facts(pm2=Got(Pm2Snapshot(None, None)),
              listeners=Got(_listeners([], {80: "apache2"})),
              probes={"frontend": refused, "backend": refused, "public": APACHE_503})
    status, line, layer = judge(f)
    assert status is Status.CRITICAL and layer is Layer.SUPERVISOR
    assert "Apache answers 503" in line and "nothing listens on 3000 or 3001" in line
    assert "PM2 daemon not running" in line and "lists all 4 apps" in line
    assert line.endswith("run `vmkeeper recover`")


def test_a_stopped_app_names_pm2_apps() -> None:
    apps = [dataclasses.replace(a, status="stopped", pid=None) if a.name == "fl-executor" else a
            for a in APPS]
    _status, line, layer = judge(facts(pm2=Got(Pm2Snapshot(42, apps, TREES))))
    assert layer is Layer.APPS and "fl-executor is stopped" in line


def test_a_crash_looping_app_points_to_its_logs() -> None:
    apps = [dataclasses.replace(a, status="errored", pid=None, restarts=16, unstable_restarts=16)
            if a.name == "fl-executor" else a for a in APPS]
    _status, line, layer = judge(facts(pm2=Got(Pm2Snapshot(42, apps, TREES))))
    assert layer is Layer.APPS and "crash-looping" in line and "vmkeeper logs fl-executor" in line


def test_restarts_grown_since_the_previous_run_are_flapping() -> None:
    previous = {a.name: a.restarts for a in APPS}
    apps = [dataclasses.replace(a, restarts=a.restarts + 3) if a.name == "backend-dev" else a
            for a in APPS]
    found = checks.evaluate(facts(pm2=Got(Pm2Snapshot(42, apps)),
                                  previous_restarts=previous), S, "pm2")
    backend = next(c for c in found if c.name == "pm2:backend-dev")
    assert backend.status is Status.WARN and backend.reason is Cause.FLAPPING


def test_a_foreign_process_on_an_app_port_is_the_first_broken_layer() -> None:
    apps = [dataclasses.replace(a, status="errored", pid=None) if a.name == "backend-dev" else a
            for a in APPS]
    listeners = [item if item.port != 3000 else host.Listener("127.0.0.1", 3000, 777, "python3")
                 for item in _listeners(APPS)]
    f = facts(pm2=Got(Pm2Snapshot(42, apps, {a.name: {a.pid} for a in apps if a.pid})),
              listeners=Got(listeners),
              probes={**facts().probes,
                      "backend": _probe("http://127.0.0.1:3000/api/auth/me", 404)})
    _status, line, layer = judge(f)
    assert layer is Layer.PORTS
    assert "3000 is held by python3 (pid 777), not by PM2's backend-dev" in line
    assert "stop pid 777" in line


def test_an_app_s_own_server_left_behind_by_its_killed_wrapper_is_told_apart() -> None:
    # `kill -9` of backend-dev's npm: its node (pid 778) still holds 3000, outside PM2's tree;
    # PM2's new wrapper crash-loops on EADDRINUSE.
    from vmkeeper.health.facts import orphans

    backend = next(a for a in APPS if a.name == "backend-dev")
    assert backend.cwd is not None
    listeners = [item if item.port != 3000 else host.Listener("127.0.0.1", 3000, 778, "node")
                 for item in _listeners(APPS)]
    ports, names = {3000: "backend"}, {"backend": "backend-dev"}
    snapshot = Pm2Snapshot(42, APPS, TREES)
    left = orphans(listeners, snapshot, ports, names, cwd_of=lambda _pid: backend.cwd,
                   parent_of=lambda _pid: 1)
    assert left == {778: "backend-dev"}
    assert orphans(listeners, snapshot, ports, names, cwd_of=lambda _pid: Path("/tmp"),
                   parent_of=lambda _pid: 1) == {}  # a stranger from elsewhere
    assert orphans(listeners, snapshot, ports, names, cwd_of=lambda _pid: backend.cwd,
                   parent_of=lambda _pid: backend.pid) == {}  # still below PM2's app
    f = facts(listeners=Got(listeners), orphans=left)
    _status, line, layer = judge(f)
    assert layer is Layer.PORTS
    assert "3000 is held by node (pid 778), a server backend-dev's killed wrapper left" in line
    assert "it stops pid 778" in line


def test_an_empty_dump_is_the_deepest_broken_layer() -> None:
    _status, line, layer = judge(facts(dump=Got([])))
    assert layer is Layer.DUMP and "lists no apps" in line


def test_a_dump_from_an_older_release_warns() -> None:
    dump = [dataclasses.replace(a, cwd=Path("/old/frontend")) if a.name == "frontend-dev" else a
            for a in APPS]
    status, _line, layer = judge(facts(dump=Got(dump)))
    assert status is Status.WARN and layer is None


def test_apache_stopped_names_apache() -> None:
    refused = _probe("http://tbp.flatlogic.app/", None, error=http.ProbeError.REFUSED)
    ports = {3001: "frontend-dev", 3000: "backend-dev", 4317: "fl-telemetry",
             4318: "fl-telemetry"}
    f = facts(listeners=Got(_listeners(APPS, ports)),
              probes={**facts().probes, "public": refused, "proxy": refused})
    _status, line, layer = judge(f)
    assert layer is Layer.APACHE and "Apache is not answering" in line


def test_systemd_oom_kill_points_to_diagnose_oom() -> None:
    unit = systemd.unit_state("pm2-ubuntu", (DATA / "systemd" / "pm2-ubuntu-oom-kill.show")
                              .read_text())
    f = facts(unit=Got(unit), pm2=Got(Pm2Snapshot(None, None)))
    _status, line, layer = judge(f, mode="systemd")
    assert layer is Layer.SUPERVISOR and "result oom-kill" in line
    assert "vmkeeper diagnose oom" in line


def test_systemd_active_unit_with_a_daemon_is_ok() -> None:
    unit = systemd.unit_state("pm2-ubuntu", (DATA / "systemd" / "pm2-ubuntu-active.show")
                              .read_text())
    found = checks.evaluate(facts(unit=Got(unit)), S, "systemd")
    assert next(c for c in found if c.name == "supervisor").status is Status.OK


def test_sticky_proxypass_retry_warns_and_node_22_warns() -> None:
    apps = [dataclasses.replace(a, node_version="22.3.0") for a in APPS]
    found = checks.evaluate(facts(proxy_config=Got(["ProxyPass / http://127.0.0.1:3001/"]),
                                  node_version=Got("v22.3.0"),
                                  pm2=Got(Pm2Snapshot(42, apps, {a.name: {a.pid}
                                                                 for a in apps}))), S, "pm2")
    by_name = {c.name: c for c in found}
    assert by_name["proxy:retry"].status is Status.WARN
    assert by_name["node"].status is Status.WARN and by_name["node:pm2"].status is Status.WARN


def test_a_full_disk_is_critical_and_reported_beside_a_healthy_chain() -> None:
    full = host.FsUsage(Path("/"), "/", 100, 2, 1000, 900, 1)
    status, line, _layer = judge(facts(filesystems=Got([full])))
    assert status is Status.CRITICAL and "host is in trouble" in line


def test_a_source_that_failed_is_unknown() -> None:
    found = checks.evaluate(facts(memory=Got(None, "boom")), S, "pm2")
    assert next(c for c in found if c.name == "memory").status is Status.UNKNOWN


def _report(found: list[checks.Check]) -> HealthReport:
    v = diagnose(found)
    return HealthReport(worst(c.status for c in found), v.line, None, None, found, 0.1, "pm2")


def test_prometheus_text_has_help_type_and_one_sample_per_check() -> None:
    found = checks.evaluate(facts(), S, "pm2")
    text = report.prometheus_text(_report(found), now=1.0)
    assert "# TYPE vmkeeper_health_status gauge\nvmkeeper_health_status 0\n" in text
    assert text.count("vmkeeper_health_check_status{") == len(found)
    assert 'vmkeeper_pm2_app_restarts{app="backend-dev"} 0' in text
    for line in text.splitlines():
        assert line.startswith("#") or " " in line


def test_prometheus_file_is_written_atomically_and_readable_by_the_collector(
        tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "vmkeeper.prom"
    target.parent.mkdir()
    target.write_text("old 1\n")
    found = checks.evaluate(facts(), S, "pm2")
    report.write_prometheus(target, _report(found))
    assert target.read_text().startswith("# HELP vmkeeper_health_status")
    assert list(target.parent.iterdir()) == [target]
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # node_exporter runs as its own user


def test_restart_counts_round_trip_through_the_state_dir(tmp_path: Path) -> None:
    found = checks.evaluate(facts(), S, "pm2")
    report.save_restarts(tmp_path, _report(found))
    assert report.load_restarts(tmp_path)["backend-dev"] == 0
