"""The sandbox's daemons outside PM2 — the agent and the watcher: PM2's death must not take
them down, as on the VM where systemd runs them. Started by `sandbox up`, stopped by `sandbox
down`, each one's pid in the state folder."""

from __future__ import annotations

import contextlib
import secrets
import signal
import sys

import psutil

from vmkeeper import proc
from vmkeeper.adapters import http
from vmkeeper.atomic import write_atomic
from vmkeeper.errors import SandboxError
from vmkeeper.sandbox.layout import Layout

_STOP_S = 10.0


def webhook_secret(layout: Layout) -> str:
    """The sandbox's webhook secret: made once and kept, like the media token."""
    path = layout.state / "agent.webhook_secret"
    if not path.exists():
        layout.state.mkdir(parents=True, exist_ok=True)
        write_atomic(path, secrets.token_hex(32))
    return path.read_text().strip()


def running_pid(layout: Layout, name: str = "agent") -> int | None:
    try:
        pid = int((layout.state / f"{name}.pid").read_text())
    except (OSError, ValueError):
        return None
    with contextlib.suppress(psutil.Error):
        if psutil.Process(pid).is_running() and name in psutil.Process(pid).cmdline():
            return pid
    return None


def spawn(layout: Layout, name: str, command: list[str]) -> int:
    """`vmkeeper --config <sandbox> <command…>` in its own session, logging to logs/<name>.log;
    the running one if there is one. ``name`` must be one of ``command``'s words."""
    pid = running_pid(layout, name)
    if pid is not None:
        return pid
    log = open(layout.logs / f"{name}.log", "ab")  # noqa: SIM115 - the child keeps it
    with log:
        pid = proc.detach([sys.executable, "-m", "vmkeeper", "--config", str(layout.config),
                           *command], output=log, cwd=layout.dir)
    write_atomic(layout.state / f"{name}.pid", str(pid))
    return pid


def start_watcher(layout: Layout) -> int:
    """Start `vmkeeper watch`; it needs no readiness wait (its first cycle is its own)."""
    return spawn(layout, "watch", ["watch"])


def start(layout: Layout, timeout: float = 30) -> int:
    """Start `vmkeeper agent serve` in its own session; wait until /v1 answers (401)."""
    pid = running_pid(layout)
    if pid is not None:
        return pid
    child_pid = spawn(layout, "agent", ["agent", "serve"])
    url = f"http://127.0.0.1:{layout.ports.agent}/v1/status"
    ready = http.wait_until_answering({url: 401}, timeout=timeout)
    if not ready.ok:
        stop(layout)
        raise SandboxError(f"The agent did not answer on port {layout.ports.agent} within "
                           f"{timeout:g} s; see {layout.logs / 'agent.log'}.")
    return child_pid


def stop(layout: Layout, name: str = "agent") -> bool:
    """SIGTERM the daemon, then SIGKILL after a while; True when one was running."""
    pid = running_pid(layout, name)
    if pid is None:
        return False
    with contextlib.suppress(psutil.Error):
        process = psutil.Process(pid)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(_STOP_S)
        except psutil.TimeoutExpired:
            process.kill()
    (layout.state / f"{name}.pid").unlink(missing_ok=True)
    return True
