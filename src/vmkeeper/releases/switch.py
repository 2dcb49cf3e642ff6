"""Runbook step 7: point `frontend-dev` at a release's app directory, then wait until it serves."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from vmkeeper.adapters import http
from vmkeeper.adapters.pm2 import Pm2
from vmkeeper.settings import Settings


@dataclass(frozen=True)
class Readiness:
    ok: bool
    seconds: float
    last: str


def frontend_url(settings: Settings) -> str:
    app = settings.apps.frontend
    return f"http://127.0.0.1:{app.port}{app.health_path or '/'}"


def wait_until_serving(
    settings: Settings,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Readiness:
    """Poll the frontend until it answers its expected status, for at most ``timeout`` s."""
    limit = timeout if timeout is not None else settings.releases.ready_timeout_s
    expected = settings.apps.frontend.expected_status or 200
    started = time.monotonic()
    last = "not tried"
    while True:
        result = http.probe(frontend_url(settings), timeout=min(5.0, limit))
        last = http.describe(result)
        if result.status == expected:
            return Readiness(True, time.monotonic() - started, last)
        if time.monotonic() - started >= limit:
            return Readiness(False, time.monotonic() - started, last)
        sleep(0.25)


def start_frontend(
    settings: Settings, pm2: Pm2, app_dir: Path, extra_env: Mapping[str, str] | None = None
) -> None:
    """`pm2 delete frontend-dev`, then `FRONT_PORT=<port> pm2 start npm --name frontend-dev --
    run start` with ``app_dir`` as cwd — delete+start, since `reload` cannot change the cwd."""
    app = settings.apps.frontend
    pm2.delete(app.name, check=False)
    env = {"FRONT_PORT": str(app.port), **app.env, **(extra_env or {})}
    pm2.start_npm(app.name, cwd=app_dir, script=app.start_script or "start", env=env)
