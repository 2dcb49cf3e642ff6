from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import psutil
import pytest

from tests.conftest import CliRun, SandboxHandle
from tests.support.waiting import wait_for
from vmkeeper import proc
from vmkeeper.sandbox import service
from vmkeeper.sandbox.layout import PLANTED_SECRETS

pytestmark = pytest.mark.slow

EXPECTED_APPS = {"frontend-dev", "backend-dev", "fl-telemetry", "fl-executor"}


def _site(sandbox: SandboxHandle, path: str = "/") -> httpx.Response:
    return httpx.get(sandbox.settings.public_url + path, timeout=10)


def test_all_four_pm2_apps_are_online(sandbox: SandboxHandle) -> None:
    apps = {app.name: app for app in sandbox.pm2.jlist()}
    assert set(apps) >= EXPECTED_APPS
    assert all(apps[name].online for name in EXPECTED_APPS)


def test_frontend_runs_from_a_release_with_front_port(sandbox: SandboxHandle) -> None:
    frontend = sandbox.pm2.app("frontend-dev")
    assert frontend is not None and frontend.cwd is not None
    assert frontend.cwd.is_relative_to(sandbox.layout.releases)
    assert frontend.env_value("FRONT_PORT") == str(sandbox.layout.ports.frontend)
    assert frontend.args == ("run", "start")
    assert not (frontend.cwd / ".next").exists() and not (frontend.cwd / "build" / "cache").exists()
    assert (frontend.cwd / "build").is_dir()


def test_frontend_answers_200_through_apache(sandbox: SandboxHandle) -> None:
    response = _site(sandbox)
    assert response.status_code == 200
    assert "vmkeeper sandbox" in response.text


def test_api_is_401_without_jwt_and_200_with_one(sandbox: SandboxHandle) -> None:
    url = f"http://127.0.0.1:{sandbox.layout.ports.backend}/api/auth/me"
    assert httpx.get(url, timeout=5).status_code == 401
    token = proc.run(
        ["node", "make-token.js", "operator"], timeout=10,
        cwd=sandbox.layout.workspace / "backend",
        env={"JWT_SECRET": PLANTED_SECRETS["JWT_SECRET"]},
    ).stdout.strip()
    response = httpx.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert response.status_code == 200
    bad = httpx.get(url, headers={"Authorization": f"Bearer {token}x"}, timeout=5)
    assert bad.status_code == 401


def test_frontend_reaches_the_api_through_the_proxy(sandbox: SandboxHandle) -> None:
    assert _site(sandbox, "/api/health").json()["ok"] is True
    page = _site(sandbox, "/api-check")
    assert page.status_code == 200 and "backend-dev" in page.text


def test_apache_answers_503_when_the_frontend_is_stopped(sandbox: SandboxHandle) -> None:
    sandbox.pm2.stop("frontend-dev")
    try:
        response = _site(sandbox)
        assert response.status_code == 503
        assert response.headers["server"].startswith("Apache")
    finally:
        sandbox.restore()
    assert _site(sandbox).status_code == 200


def test_dump_lists_the_four_apps_for_resurrect(sandbox: SandboxHandle) -> None:
    dumped = {app.name for app in sandbox.pm2.read_dump()}
    assert dumped >= EXPECTED_APPS


def test_up_again_is_idempotent(sandbox: SandboxHandle) -> None:
    before = {app.name: app.pid for app in sandbox.pm2.jlist()}
    apache_pid = sandbox.apache.pid()
    service.up(sandbox.layout)
    after = {app.name: app.pid for app in sandbox.pm2.jlist()}
    assert before == after
    assert sandbox.apache.pid() == apache_pid


def test_sandbox_status_json(sandbox: SandboxHandle, cli: Callable[..., CliRun]) -> None:
    run = cli("sandbox", "status", "--dir", str(sandbox.layout.dir), "--json")
    assert run.code == 0, run.stderr
    data = json.loads(run.stdout)
    assert {a["name"] for a in data["apps"]} >= EXPECTED_APPS
    assert data["config"] == str(sandbox.layout.config)
    assert data["urls"]["site"].startswith("http://127.0.0.1:")


def test_config_points_every_setting_at_the_sandbox(
    sandbox: SandboxHandle, cli: Callable[..., CliRun]
) -> None:
    data = json.loads(sandbox.vmkeeper(cli, "config", "show", "--json").stdout)
    assert data["settings"]["pm2"]["home"] == str(sandbox.layout.pm2_home)
    assert data["settings"]["apps"]["frontend"]["port"] == sandbox.layout.ports.frontend
    assert data["sources"]["pm2.home"] == f"file:{sandbox.layout.config}"


def test_down_leaves_no_process_then_up_restores(sandbox: SandboxHandle) -> None:
    daemon = sandbox.pm2.daemon_pid()
    app_pids = [app.pid for app in sandbox.pm2.jlist() if app.pid]
    apache_pid = sandbox.apache.pid()
    assert daemon and apache_pid and app_pids
    killed = service.down(sandbox.layout)
    assert killed == []  # the orderly stop left nothing behind
    def ended(pid: int) -> bool:
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    for pid in [daemon, apache_pid, *app_pids]:
        wait_for(lambda pid=pid: ended(pid), 10, f"process {pid} to end after sandbox down")
    assert service.sandbox_processes(sandbox.layout) == []
    sandbox.restore()
    assert _site(sandbox).status_code == 200
