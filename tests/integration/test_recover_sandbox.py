"""`vmkeeper recover` against the sandbox: each fault of the runbook's 503 tree, then healed
(or refused), verified by a 200 through Apache. Every fault is undone afterwards."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import CliRun, SandboxHandle

pytestmark = pytest.mark.slow

DATA = Path(__file__).parents[1] / "data" / "systemd"
FAST = ("--set", "health.recover_timeout_s=40", "--set", "health.recover_attempts=2",
        "--set", "health.recover_backoff_s=0.5")


def recover(sandbox: SandboxHandle, cli: Callable[..., CliRun], *extra: str
            ) -> tuple[int, dict[str, object]]:
    run = sandbox.vmkeeper(cli, *FAST, *extra, "recover", "--json")
    assert run.stdout, run.stderr
    return run.code, json.loads(run.stdout)


def site(sandbox: SandboxHandle) -> int:
    return httpx.get(sandbox.settings.public_url, timeout=10).status_code


def commands(result: dict[str, object]) -> list[str]:
    return [a["command"] for a in result["actions"]]  # type: ignore[union-attr,index]


def test_healthy_sandbox_needs_nothing(sandbox: SandboxHandle, cli: Callable[..., CliRun]
                                       ) -> None:
    code, result = recover(sandbox, cli)
    assert code == 0 and result["ok"] and result["actions"] == []
    assert str(result["diagnosis"]).startswith("healthy")


def test_pm2_kill_is_resurrected_and_the_site_answers_200(
        sandbox: SandboxHandle, cli: Callable[..., CliRun]) -> None:
    sandbox.pm2.kill()
    try:
        assert site(sandbox) == 503
        run = sandbox.vmkeeper(cli, *FAST, "recover", "--dry-run", "--json")
        assert run.stdout, run.stderr
        code, planned = run.code, json.loads(run.stdout)
        assert code == 0 and planned["dry_run"] and commands(planned)[0].endswith("resurrect")
        assert sandbox.pm2.daemon_pid() is None  # the dry run changed nothing
        code, result = recover(sandbox, cli)
        assert code == 0 and result["ok"], result["diagnosis"]
        assert commands(result) == [f"{sandbox.layout.pm2_bin} resurrect"]
        action = result["actions"][0]  # type: ignore[index]
        assert action["ok"] and action["outcome"] == "done" and action["recheck"]
        assert result["health_after"]["status"] in ("ok", "warn")  # type: ignore[index]
        assert site(sandbox) == 200
    finally:
        sandbox.restore()


def test_a_switch_cut_off_on_the_spare_port_is_routed_back_and_the_site_answers(
        sandbox: SandboxHandle, cli: Callable[..., CliRun]) -> None:
    # What a deploy SIGKILLed between `flip` and `back`, then a reboot, leaves: Apache's map on
    # the spare port, nothing serving there (the temporary app was never saved).
    from vmkeeper.adapters import apache
    from vmkeeper.releases import handover

    settings = sandbox.settings
    handover.write_map(settings, settings.releases.spare_port)
    try:
        assert site(sandbox) == 503
        health = sandbox.vmkeeper(cli, "health", "--json")
        route = next(c for c in json.loads(health.stdout)["checks"] if c["name"] == "proxy:route")
        assert health.code == 2 and route["status"] == "critical", route
        code, result = recover(sandbox, cli)
        assert code == 0 and result["ok"], result["diagnosis"]
        assert commands(result)[0].startswith("finish the switch a killed deploy left")
        routed = apache.map_path(settings.proxy.frontend_include).read_text()
        assert apache.map_port(routed) == settings.apps.frontend.port
        assert site(sandbox) == 200
    finally:
        handover.write_map(settings, settings.apps.frontend.port)


def test_a_server_left_behind_by_its_killed_npm_wrapper_is_stopped_and_the_app_restarted(
        sandbox: SandboxHandle, cli: Callable[..., CliRun]) -> None:
    # `kill -9` of backend-dev's PM2 pid (the runbook's `pm2 start npm …`: npm's) orphans its
    # node server, which keeps the port while PM2's new wrapper cannot bind.
    import os
    import signal

    import psutil

    from tests.support.waiting import wait_for
    from vmkeeper.adapters import host

    name = sandbox.settings.apps.backend.name
    port = sandbox.settings.apps.backend.port
    assert port is not None
    app = sandbox.pm2.app(name)
    assert app is not None and app.pid
    server = next(found.pid for found in host.listeners_psutil([port]) if found.pid)
    assert server != app.pid  # npm's child serves: the wrapper is what PM2 knows
    os.kill(app.pid, signal.SIGKILL)
    try:
        wait_for(lambda: psutil.Process(server).ppid() != app.pid, 10, "the server orphaned")
        health = sandbox.vmkeeper(cli, "health", "--json")
        causes = {c["reason"] for c in json.loads(health.stdout)["checks"]}
        assert "orphaned" in causes, health.stdout
        code, result = recover(sandbox, cli)
        assert code == 0 and result["ok"], result["diagnosis"]
        assert commands(result)[0] == f"kill -TERM {server}"
        assert not psutil.pid_exists(server) or psutil.Process(server).status() == "zombie"
        owner = next(found.pid for found in host.listeners_psutil([port]) if found.pid)
        assert owner != server
        api = sandbox.settings.public_url.rstrip("/") + "/api/auth/me"
        assert httpx.get(api, timeout=10).status_code == 401
    finally:
        sandbox.restore()


def test_one_stopped_app_is_restarted(sandbox: SandboxHandle, cli: Callable[..., CliRun]
                                      ) -> None:
    sandbox.pm2.stop("backend-dev")
    try:
        code, result = recover(sandbox, cli)
        assert code == 0 and result["ok"], result["diagnosis"]
        assert commands(result) == [f"{sandbox.layout.pm2_bin} restart backend-dev --update-env"]
        assert httpx.get(sandbox.settings.public_url + "/api/auth/me", timeout=10
                         ).status_code == 401
    finally:
        sandbox.restore()


def test_a_crash_looping_app_stops_after_bounded_attempts_with_evidence(
        sandbox: SandboxHandle, cli: Callable[..., CliRun], tmp_path: Path) -> None:
    crash = tmp_path / "crash.js"
    crash.write_text("console.error('boom: cannot start'); process.exit(1);\n")
    sandbox.pm2.delete("fl-executor")
    sandbox.pm2.start_file("fl-executor", crash, cwd=tmp_path)
    try:
        code, result = recover(sandbox, cli)
        assert code == 1 and not result["ok"]
        assert 1 <= len(result["actions"]) <= 2  # type: ignore[arg-type]
        assert all(c.endswith("restart fl-executor --update-env") for c in commands(result))
        assert result["attempts"] == 2 and "Not healed" in str(result["diagnosis"])
        assert "fl-executor" in str(result["diagnosis"])
        assert not any("git" in c or "executor.js" in c for c in commands(result))
    finally:
        sandbox.restore()


def test_an_emptied_dump_is_refused(sandbox: SandboxHandle, cli: Callable[..., CliRun]) -> None:
    dump = sandbox.pm2.dump_path
    saved = dump.read_text()
    sandbox.pm2.kill()
    dump.write_text("[]")
    try:
        code, result = recover(sandbox, cli)
        assert code == 1 and not result["ok"] and result["actions"] == []
        assert "refusing to resurrect" in str(result["diagnosis"])
        assert sandbox.pm2.daemon_pid() is None
    finally:
        dump.write_text(saved)
        sandbox.restore()


def test_apache_stopped_is_said_and_left_alone(sandbox: SandboxHandle,
                                               cli: Callable[..., CliRun]) -> None:
    sandbox.apache.stop()
    try:
        health = json.loads(sandbox.vmkeeper(cli, "health", "--json").stdout)
        assert health["first_broken_layer"] == "Apache"
        code, result = recover(sandbox, cli)
        assert code == 1 and result["actions"] == []
        assert "Apache itself is down" in str(result["diagnosis"])
        assert sandbox.apache.pid() is None
    finally:
        sandbox.restore()


def _standin(folder: Path, sandbox: SandboxHandle) -> Path:
    """A `systemctl` that records its calls and replays recorded `systemctl show` output; its
    `restart` does what PM2's unit does (ExecStart=pm2 resurrect)."""
    (folder / "show.txt").write_text((DATA / "pm2-ubuntu-oom-kill.show").read_text())
    script = folder / "systemctl"
    script.write_text(f"""#!/bin/sh
echo "$*" >> "{folder}/calls.log"
case "$1" in
  show) cat "{folder}/show.txt" ;;
  reset-failed) exit 0 ;;
  restart)
    PM2_HOME="{sandbox.layout.pm2_home}" "{sandbox.layout.pm2_bin}" resurrect \\
      >/dev/null 2>&1 || exit 1
    cp "{DATA / 'pm2-ubuntu-active.show'}" "{folder}/show.txt" ;;
  *) exit 1 ;;
esac
""")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def test_systemd_path_reads_oom_kill_then_reset_failed_and_restart(
        sandbox: SandboxHandle, cli: Callable[..., CliRun], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    _standin(tmp_path, sandbox)
    monkeypatch.setenv("PATH", f"{tmp_path}:{__import__('os').environ['PATH']}")
    systemd = ("--set", "health.supervisor=systemd")
    sandbox.pm2.kill()
    try:
        health = json.loads(sandbox.vmkeeper(cli, *systemd, "health", "--json").stdout)
        supervisor = next(c for c in health["checks"] if c["name"] == "supervisor")
        assert supervisor["observed"]["result"] == "oom-kill"
        assert "vmkeeper diagnose oom" in health["verdict"]
        code, result = recover(sandbox, cli, *systemd)
        assert code == 0 and result["ok"], result["diagnosis"]
        assert commands(result) == ["systemctl reset-failed pm2-ubuntu.service",
                                    "systemctl restart pm2-ubuntu.service"]
        assert any("oom-kill" in note for note in result["notes"])  # type: ignore[union-attr]
        calls = (tmp_path / "calls.log").read_text().splitlines()
        assert "reset-failed pm2-ubuntu.service" in calls
        assert calls.index("reset-failed pm2-ubuntu.service") < \
            calls.index("restart pm2-ubuntu.service")
        assert site(sandbox) == 200
    finally:
        sandbox.restore()
