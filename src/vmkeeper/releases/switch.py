"""Runbook step 7: point `frontend-dev` at a release's app directory, then wait until it serves.

The runbook's switch is `pm2 delete` then `pm2 start`: between the two nothing serves. A deploy
killed right there would leave the site down, so the pair runs in a child process of its own
session (``python -m vmkeeper.releases.switch``) that finishes even if the deploy is SIGKILLed,
and Ctrl-C/SIGTERM are held back in the deploy until the child is done.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Self

from vmkeeper import proc
from vmkeeper.adapters import http
from vmkeeper.adapters.pm2 import Pm2, start_npm_argv
from vmkeeper.settings import Settings


@dataclass(frozen=True)
class Readiness:
    ok: bool
    seconds: float
    last: str


def frontend_url(settings: Settings) -> str:
    app = settings.apps.frontend
    return f"http://127.0.0.1:{app.port}{app.health_path or '/'}"


def frontend_env(settings: Settings, extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    app = settings.apps.frontend
    return {"FRONT_PORT": str(app.port), **app.env, **(extra_env or {})}


def start_argv(settings: Settings, pm2: Pm2) -> list[str]:
    app = settings.apps.frontend
    return start_npm_argv(pm2.bin, app.name, app.start_script or "start")


def wait_until_serving(
    settings: Settings,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
    pm2: Pm2 | None = None,
    app_dir: Path | None = None,
) -> Readiness:
    """Poll the frontend until it answers its expected status, for at most ``timeout`` s.

    With ``pm2`` and ``app_dir``, also require `frontend-dev` online with that cwd: a 200 from
    a process that is not the new release (an old server still on the port) is not readiness.
    """
    limit = timeout if timeout is not None else settings.releases.ready_timeout_s
    expected = settings.apps.frontend.expected_status or 200
    started = time.monotonic()
    last = "not tried"
    while True:
        result = http.probe(frontend_url(settings), timeout=min(5.0, limit))
        last = http.describe(result)
        if result.status == expected:
            if pm2 is None or app_dir is None:
                return Readiness(True, time.monotonic() - started, last)
            app = pm2.app(settings.apps.frontend.name)
            if app is not None and app.online and app.cwd is not None \
                    and app.cwd.resolve() == app_dir.resolve():
                return Readiness(True, time.monotonic() - started, last)
            last = f"{last}, but PM2 shows {settings.apps.frontend.name} " + (
                "missing" if app is None else f"{app.status} in {app.cwd}")
        elif result.status is not None:
            last = f"HTTP {result.status} (expected {expected})"
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
    pm2.start_npm(
        app.name, cwd=app_dir, script=app.start_script or "start",
        env=frontend_env(settings, extra_env),
    )


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then act on them as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in received:
            signal.raise_signal(signum)


def activate(
    settings: Settings, pm2: Pm2, app_dir: Path, extra_env: Mapping[str, str] | None = None
) -> proc.Result:
    """Run delete+start in a detached child (see the module docstring); raise on failure."""
    app = settings.apps.frontend
    spec = {
        "bin": pm2.bin, "home": str(pm2.home), "timeout": pm2.timeout, "name": app.name,
        "cwd": str(app_dir), "script": app.start_script or "start",
        "env": frontend_env(settings, extra_env),
    }
    with interrupts_deferred():
        return proc.run(
            [sys.executable, "-m", "vmkeeper.releases.switch", json.dumps(spec)],
            timeout=pm2.timeout * 2 + 15,
        )


def _child(spec: dict[str, Any]) -> int:
    pm2 = Pm2(bin=spec["bin"], home=Path(spec["home"]), timeout=float(spec["timeout"]))
    pm2.delete(spec["name"], check=False)
    pm2.start_npm(spec["name"], cwd=Path(spec["cwd"]), script=spec["script"], env=spec["env"])
    return 0


@dataclass
class TrafficWatch:
    """Requests through the proxy while the switch runs: how many failed, the longest gap."""

    url: str
    interval_s: float = 0.1
    timeout_s: float = 2.0
    requests: int = 0
    failed: int = 0
    longest_gap_s: float = 0.0
    _stop: threading.Event | None = None
    _thread: threading.Thread | None = None

    def _loop(self) -> None:
        assert self._stop is not None
        last_ok = time.monotonic()
        while not self._stop.is_set():
            result = http.probe(self.url, timeout=self.timeout_s)
            now = time.monotonic()
            self.requests += 1
            if result.status is not None and result.status < 500:
                last_ok = now
            else:
                self.failed += 1
                self.longest_gap_s = max(self.longest_gap_s, now - last_ok)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Self:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="traffic-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._stop is not None and self._thread is not None
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 1)


if __name__ == "__main__":
    from vmkeeper import logs

    logs.configure()  # an entry point: importing the package configures nothing
    try:
        sys.exit(_child(json.loads(sys.argv[1])))
    except Exception as error:  # noqa: BLE001 - the parent reads this line as the failure
        sys.stderr.write(f"switch failed: {error}\n")
        sys.exit(1)
