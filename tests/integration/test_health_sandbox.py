"""`vmkeeper health` against the sandbox (real PM2, Apache, Next.js), one fault at a time.

Every fault is undone (sandbox.restore()) whatever the test's outcome: the sandbox is shared.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliRun, SandboxHandle
from tests.support.waiting import wait_for
from vmkeeper import proc

pytestmark = pytest.mark.slow


def health(sandbox: SandboxHandle, cli: Callable[..., CliRun], *extra: str
           ) -> tuple[int, dict[str, object]]:
    run = sandbox.vmkeeper(cli, *extra, "health", "--json")
    return run.code, json.loads(run.stdout)


def _check(report: dict[str, object], name: str) -> dict[str, object]:
    return next(c for c in report["checks"] if c["name"] == name)  # type: ignore[union-attr,index]


def test_healthy_sandbox_is_ok_with_every_check_and_exit_0(
        sandbox: SandboxHandle, cli: Callable[..., CliRun], tmp_path: Path) -> None:
    prom = tmp_path / "vmkeeper.prom"
    code, report = health(sandbox, cli)
    assert code == 0 and report["status"] == "ok", report["verdict"]
    assert report["first_broken_layer"] is None
    names = {c["name"] for c in report["checks"]}  # type: ignore[union-attr]
    assert {"http:frontend", "http:backend", "http:public", "supervisor", "dump", "node",
            "proxy:retry", "memory", "swap", "pm2:frontend-dev"} <= names
    assert _check(report, "http:backend")["observed"]["status"] == 401  # type: ignore[index]
    for check in report["checks"]:  # type: ignore[union-attr]
        assert {"name", "status", "summary", "observed", "expected"} <= set(check)
    run = sandbox.vmkeeper(cli, "health", "--prometheus", str(prom))
    assert run.code == 0 and run.stdout.splitlines()[0].startswith("OK ")
    assert "vmkeeper_health_status 0" in prom.read_text()


def test_status_shows_apps_with_ports_and_the_active_release(
        sandbox: SandboxHandle, cli: Callable[..., CliRun]) -> None:
    run = sandbox.vmkeeper(cli, "status", "--json")
    assert run.code == 0
    apps = {a["name"]: a for a in json.loads(run.stdout)["apps"]}
    frontend = apps["frontend-dev"]
    assert frontend["status"] == "online" and frontend["release"]
    assert frontend["ports"] == [sandbox.layout.ports.frontend]
    assert {"name", "status", "pid", "cwd", "restarts", "memory_bytes"} <= set(frontend)


def test_logs_are_bounded_and_redacted(sandbox: SandboxHandle,
                                       cli: Callable[..., CliRun]) -> None:
    secret = "sandbox-jwt-secret-Zx81kQ"
    log = sandbox.layout.pm2_home / "logs" / "backend-dev-out.log"
    with log.open("a") as out:
        out.write(f"JWT_SECRET={secret} leaked by a careless log line\n")
    run = sandbox.vmkeeper(cli, "logs", "backend-dev", "--lines", "5", "--json")
    assert run.code == 0
    lines = json.loads(run.stdout)["lines"]
    assert 0 < len(lines) <= 10 and secret not in run.stdout
    assert any("careless" in line["text"] for line in lines)
    everything = sandbox.vmkeeper(cli, "logs", "-n", "2", "--json")
    sources = {s["source"] for s in json.loads(everything.stdout)["sources"]}
    assert {"frontend-dev/out", "fl-executor/error", "apache/error"} <= sources


def test_doctor_checks_node_pm2_ffmpeg_and_paths(sandbox: SandboxHandle,
                                                 cli: Callable[..., CliRun]) -> None:
    run = sandbox.vmkeeper(cli, "doctor", "--json")
    report = json.loads(run.stdout)
    names = {c["name"] for c in report["checks"]}
    assert {"node", "pm2", "ffmpeg", "apache", "proxy:retry", "path:dump"} <= names
    assert run.code in (0, 1) and report["status"] in ("ok", "warn")
    assert "7.0.4" in _check(report, "pm2")["summary"]  # type: ignore[operator]


def test_pm2_killed_names_the_supervisor_and_never_starts_a_daemon(
        sandbox: SandboxHandle, cli: Callable[..., CliRun]) -> None:
    sandbox.pm2.kill()
    try:
        code, report = health(sandbox, cli)
        assert code == 2 and report["first_broken_layer"] == "PM2 supervisor"
        verdict = str(report["verdict"])
        assert "Apache answers 503" in verdict and "PM2 daemon not running" in verdict
        assert "lists all 4 apps" in verdict and "vmkeeper recover" in verdict
        assert _check(report, "http:public")["summary"].find("503 from Apache") >= 0  # type: ignore[union-attr]
        # health must not have spawned a PM2 daemon while looking.
        assert sandbox.pm2.daemon_pid() is None
        status = json.loads(sandbox.vmkeeper(cli, "status", "--json").stdout)
        assert status["pm2_daemon_pid"] is None and sandbox.pm2.daemon_pid() is None
    finally:
        sandbox.restore()


def test_the_daemon_s_socket_lists_what_pm2_jlist_does(sandbox: SandboxHandle) -> None:
    from vmkeeper.adapters import pm2 as pm2_adapter

    pm2 = sandbox.pm2
    live = pm2.live_list()
    cli = pm2_adapter.parse_jlist(pm2.runner([pm2.bin, "jlist"], timeout=60,
                                             env={"PM2_HOME": str(pm2.home)}).stdout)
    assert live is not None and live
    assert [(a.name, a.pid, a.status, a.cwd) for a in live] == \
        [(a.name, a.pid, a.status, a.cwd) for a in cli]


def test_looking_while_pm2_is_killed_never_starts_a_daemon(sandbox: SandboxHandle) -> None:
    # `pm2 jlist` overlapping a `pm2 kill` started a fresh, empty daemon (its ping failed):
    # health and the watcher then saw "online, no apps" instead of the outage.
    import threading

    from vmkeeper.health.facts import pm2_snapshot

    pm2, looks = sandbox.pm2, []
    done = threading.Event()

    def look() -> None:
        while not done.is_set():
            looks.append(pm2_snapshot(pm2))

    looker = threading.Thread(target=look, daemon=True)
    looker.start()
    try:
        sandbox.pm2.kill()
        wait_for(lambda: len(looks) > 3 and looks[-1].daemon_pid is None, 30,
                 "the looks to see the daemon gone")
        done.set()
        looker.join(10)
        assert pm2.daemon_pid() is None and pm2.live_list() is None
        assert looks[-1].apps is None
    finally:
        done.set()
        sandbox.restore()


def test_a_foreign_process_on_the_backend_port_is_named(
        sandbox: SandboxHandle, cli: Callable[..., CliRun]) -> None:
    port = sandbox.layout.ports.backend
    sandbox.pm2.stop("backend-dev")
    try:
        with proc.start(["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                        timeout=120, stdout=proc.DEVNULL, stderr=proc.DEVNULL) as stranger:
            _wait_listening(port)
            code, report = health(sandbox, cli)
            assert code == 2 and report["first_broken_layer"] == "listening ports"
            assert f"held by python3 (pid {stranger.pid})" in str(report["verdict"])
            run = sandbox.vmkeeper(cli, "recover", "--json")
            result = json.loads(run.stdout)
            assert run.code == 1 and result["actions"] == []
            assert "stop that process" in result["diagnosis"]
    finally:
        sandbox.restore()


def _wait_listening(port: int) -> None:
    import socket

    def listening() -> bool:
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_for(listening, 10, f"something to listen on {port}")
