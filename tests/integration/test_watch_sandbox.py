"""The watcher as a running process against the sandbox, each fault injected while it runs: PM2
killed, one app stopped, Apache stopped, a crash-looping app, the backend killed -9, a foreign
process on the backend's port, the dump emptied then PM2 killed, a deploy holding the lock. A
real webhook receiver (an HTTP server here) and a real SMTP server (aiosmtpd) get exactly the
alerts expected. Short intervals and budgets (the slow tier is heavy on a shared machine); the
shared sandbox is restored after each test."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.conftest import TEST_BASE_PORT, SandboxHandle
from tests.support.waiting import wait_for
from tests.watch.test_alerts import Receiver
from vmkeeper import proc
from vmkeeper.releases.lock import acquire
from vmkeeper.watch.store import Incident, Store

pytestmark = pytest.mark.slow

# A fault's budget: 2 recoveries of one attempt each, verified within 10 s, 1 s apart.
FAST = ["watch.interval_s=1", "watch.down_after=2", "watch.up_after=2", "watch.heavy_every=5",
        "watch.max_recoveries=2", "watch.backoff_s=1", "watch.backoff_max_s=2",
        "health.recover_timeout_s=10", "health.recover_attempts=1",
        "health.recover_backoff_s=0.5", "alerts.retries=2", "alerts.timeout_s=5"]
_SUBJECTS = {"incident opened": "open", "gave up": "gave_up", "incident resolved": "resolved"}


@dataclass
class Watching:
    """The running watcher's outputs: the webhook's bodies, the emails, its incidents."""

    receiver: Receiver
    state: Path
    textfile: Path
    mails: list[str] = field(default_factory=list)

    def events(self) -> list[str]:
        return [body["event"] for body in self.receiver.bodies]

    def emailed(self) -> list[str]:
        kinds = []
        for mail in self.mails:
            subject = next(line for line in mail.splitlines() if line.startswith("Subject:"))
            kinds += [kind for words, kind in _SUBJECTS.items() if words in subject]
        return kinds

    def alerted(self, *expected: str, timeout: float = 90) -> list[dict[str, Any]]:
        """Wait for exactly these alerts by webhook and by email; the webhook's bodies."""
        wait_for(lambda: self.events() == list(expected) and self.emailed() == list(expected),
                 timeout, f"alerts {expected} (webhook {self.events()}, email {self.emailed()})")
        return self.receiver.bodies

    def incidents(self) -> list[Incident]:
        return Store(self.state / "watch").incidents()

    def cycles(self, count: int) -> None:
        """Wait until the watcher has looked ``count`` more times (its textfile's clock)."""
        start = self._last_run()
        wait_for(lambda: self._last_run() >= start + count * 0.99, 30 + count * 5,
                 f"{count} more watch cycles")

    def _last_run(self) -> float:
        found = re.search(r"^vmkeeper_health_last_run_timestamp_seconds (\S+)$",
                          self.textfile.read_text(), re.MULTILINE)
        return float(found.group(1)) if found else 0.0


@pytest.fixture(scope="module")
def mailbox() -> Iterator[list[str]]:
    from aiosmtpd.controller import Controller

    received: list[str] = []

    class Handler:
        async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
            received.append(envelope.content.decode())
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=TEST_BASE_PORT + 96)
    controller.start()
    yield received
    controller.stop()


def _start(sandbox: SandboxHandle, tmp_path: Path, mailbox: list[str],
           settings: list[str]) -> Iterator[Watching]:
    mailbox.clear()
    watching = Watching(Receiver(), tmp_path / "watch-state", tmp_path / "watch.prom", mailbox)
    sets = [f"state_dir={watching.state}", f"watch.textfile={watching.textfile}",
            f"alerts.webhook_url={watching.receiver.url}", "alerts.smtp_host=127.0.0.1",
            f"alerts.smtp_port={TEST_BASE_PORT + 96}", 'alerts.smtp_to=["ops@example.org"]',
            *settings]
    argv = [sys.executable, "-m", "vmkeeper", "--config", str(sandbox.config),
            *(arg for s in sets for arg in ("--set", s)), "watch"]
    log = (tmp_path / "watch.log").open("wb")
    child = subprocess.Popen(["nice", *argv], stdout=log, stderr=log, start_new_session=True,
                             env={**os.environ})
    try:
        wait_for(watching.textfile.exists, 60, "the watcher's first cycle")
        yield watching
    finally:
        child.terminate()
        child.wait(15)
        log.close()
        watching.receiver.server.shutdown()
        sandbox.restore()


@pytest.fixture
def watcher(sandbox: SandboxHandle, tmp_path: Path, mailbox: list[str]) -> Iterator[Watching]:
    yield from _start(sandbox, tmp_path, mailbox, FAST)


def _site(sandbox: SandboxHandle) -> int:
    try:
        return httpx.get(sandbox.settings.public_url, timeout=5).status_code
    except httpx.HTTPError:
        return 0


def test_the_watcher_heals_pm2_faults_and_gives_up_on_apache(
        sandbox: SandboxHandle, watcher: Watching) -> None:
    assert _site(sandbox) == 200
    sandbox.pm2.kill()  # the June incident
    watcher.alerted("open", "resolved", timeout=180)
    assert _site(sandbox) == 200
    sandbox.pm2.stop(sandbox.settings.apps.frontend.name)
    watcher.alerted("open", "resolved", "open", "resolved", timeout=180)
    assert _site(sandbox) == 200
    sandbox.apache.stop()  # nothing vmkeeper may do: one alert, no action
    bodies = watcher.alerted("open", "resolved", "open", "resolved", "gave_up", timeout=120)
    assert bodies[4]["incident"]["actions"] == []


@pytest.fixture
def crash_watcher(sandbox: SandboxHandle, tmp_path: Path,
                  mailbox: list[str]) -> Iterator[Watching]:
    # A crash loop never settles: each recovery takes its whole recover_timeout_s.
    yield from _start(sandbox, tmp_path, mailbox, [*FAST, "health.recover_timeout_s=4"])


def test_a_crash_loop_spends_the_budget_then_gives_up_once(
        sandbox: SandboxHandle, crash_watcher: Watching, tmp_path: Path) -> None:
    watcher = crash_watcher
    crash = tmp_path / "crash.js"
    crash.write_text("console.error('boom: cannot start'); process.exit(1);\n")
    sandbox.pm2.delete("fl-executor")
    sandbox.pm2.start_file("fl-executor", crash, cwd=tmp_path)
    watcher.alerted("open", "gave_up", timeout=120)
    watcher.cycles(3)  # never a loop: nothing more happens while it stays broken
    assert watcher.events() == ["open", "gave_up"] and watcher.emailed() == ["open", "gave_up"]
    [incident] = watcher.incidents()
    assert incident.state == "gave_up" and "fl-executor" in incident.diagnosis
    assert len(incident.actions) == 2  # watch.max_recoveries, each one failed
    assert not any(action["ok"] for action in incident.actions)
    steps = [s["command"] for a in incident.actions for s in a["steps"]]
    assert steps and all(s.endswith("restart fl-executor --update-env") for s in steps)
    assert incident.evidence  # captured when it opened


def test_the_backend_killed_9_is_back_with_no_incident_left_open(
        sandbox: SandboxHandle, watcher: Watching) -> None:
    backend = sandbox.settings.apps.backend
    [app] = [a for a in sandbox.pm2.jlist() if a.name == backend.name]
    assert app.pid
    tree = psutil.Process(app.pid)
    for process in [*tree.children(recursive=True), tree]:
        # A parent may exit on its own once its child is killed (npm does): gone is the goal.
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGKILL)
    me = f"http://127.0.0.1:{backend.port}{backend.health_path or '/'}"
    wait_for(lambda: httpx.get(me, timeout=5).status_code < 500, 60, "the backend to answer")
    watcher.cycles(4)
    # PM2's own autorestart usually brings it back within a cycle (no incident); when the
    # watcher saw the hole, its incident was recovered and closed, never left open.
    assert watcher.events() in ([], ["open", "resolved"])
    assert all(i.state == "resolved" and i.seconds_to_recover is not None
               for i in watcher.incidents())
    assert _site(sandbox) == 200


def test_a_foreign_process_on_the_backend_port_is_named_and_left_alone(
        sandbox: SandboxHandle, watcher: Watching) -> None:
    port = sandbox.layout.ports.backend
    sandbox.pm2.stop("backend-dev")
    with proc.start(["python3", "-m", "http.server", str(port), "--bind", "127.0.0.1"],
                    timeout=120, stdout=proc.DEVNULL, stderr=proc.DEVNULL) as stranger:
        [body] = watcher.alerted("gave_up")
        assert f"python3 (pid {stranger.pid})" in body["text"]
        watcher.cycles(3)
        assert watcher.events() == ["gave_up"]
        assert body["incident"]["actions"] == [] and watcher.incidents()[0].actions == []
        assert psutil.pid_exists(stranger.pid)  # not vmkeeper's to stop
    sandbox.restore()
    watcher.alerted("gave_up", "resolved")


def test_an_emptied_dump_then_pm2_killed_is_not_resurrected(
        sandbox: SandboxHandle, watcher: Watching) -> None:
    dump = sandbox.pm2.dump_path
    saved = dump.read_text()
    dump.write_text("[]")
    sandbox.pm2.kill()
    try:
        [body] = watcher.alerted("gave_up")
        watcher.cycles(3)
        assert watcher.events() == ["gave_up"] and body["incident"]["actions"] == []
        # No resurrect from an empty dump: no app is back. (The daemon itself may be: a `pm2
        # jlist` of a health look that overlaps `pm2 kill` spawns a fresh, empty one — PM2's
        # CLI does so whenever its ping fails.)
        assert sandbox.pm2.daemon_pid() is None or sandbox.pm2.jlist() == []
    finally:
        dump.write_text(saved)
    sandbox.pm2.resurrect()  # what a person does once the dump is right again
    watcher.alerted("gave_up", "resolved")


@pytest.fixture
def deploy_watcher(sandbox: SandboxHandle, tmp_path: Path,
                   mailbox: list[str]) -> Iterator[Watching]:
    yield from _start(sandbox, tmp_path, mailbox, [*FAST, "watch.deploy_timeout_s=10"])


def test_a_deploy_is_a_maintenance_window_until_it_outlives_its_timeout(
        sandbox: SandboxHandle, deploy_watcher: Watching) -> None:
    import time

    with acquire(sandbox.settings.releases.root, "deploy", branch="main"):
        held_at = time.time()
        sandbox.pm2.stop(sandbox.settings.apps.frontend.name)  # a switch's blip
        deploy_watcher.cycles(3)
        assert _site(sandbox) == 503 and time.time() - held_at < 10
        assert deploy_watcher.events() == [] and deploy_watcher.incidents() == []
        deploy_watcher.alerted("open", "resolved", timeout=120)  # outlived: an incident
        [incident] = deploy_watcher.incidents()
        assert incident.opened_at - held_at >= 10 and incident.actions
    assert _site(sandbox) == 200
