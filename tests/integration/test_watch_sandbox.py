"""The watcher as a running process against the sandbox: PM2 killed, one app stopped, Apache
stopped; a real webhook receiver gets exactly the alerts expected. One watcher, faults in turn
(the slow tier is heavy on a shared machine)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import SandboxHandle
from tests.support.waiting import wait_for
from tests.watch.test_alerts import Receiver

pytestmark = pytest.mark.slow


def _site(sandbox: SandboxHandle) -> int:
    try:
        return httpx.get(sandbox.settings.public_url, timeout=5).status_code
    except httpx.HTTPError:
        return 0


@pytest.fixture
def watcher(sandbox: SandboxHandle, tmp_path: Path) -> Iterator[Receiver]:
    receiver = Receiver()
    state = tmp_path / "watch-state"
    argv = [sys.executable, "-m", "vmkeeper", "--config", str(sandbox.config),
            "--set", f"state_dir={state}", "--set", "watch.interval_s=1",
            "--set", f"alerts.webhook_url={receiver.url}", "watch"]
    log = (tmp_path / "watch.log").open("wb")
    child = subprocess.Popen(["nice", *argv], stdout=log, stderr=log, start_new_session=True,
                             env={**os.environ})
    try:
        yield receiver
    finally:
        child.terminate()
        child.wait(15)
        log.close()
        receiver.server.shutdown()
        sandbox.restore()


def _events(receiver: Receiver) -> list[str]:
    return [body["event"] for body in receiver.bodies]


def test_the_watcher_heals_pm2_faults_and_gives_up_on_apache(
        sandbox: SandboxHandle, watcher: Receiver) -> None:
    assert _site(sandbox) == 200
    sandbox.pm2.kill()  # the June incident
    wait_for(lambda: _events(watcher) == ["open", "resolved"], timeout=180,
             what="the watcher to open and resolve the pm2 kill incident")
    assert _site(sandbox) == 200
    sandbox.pm2.stop(sandbox.settings.apps.frontend.name)
    wait_for(lambda: len(watcher.bodies) == 4, timeout=180,
             what="the watcher to heal a stopped app")
    assert _events(watcher)[2:] == ["open", "resolved"] and _site(sandbox) == 200
    sandbox.apache.stop()  # nothing vmkeeper may do: one alert, no action
    wait_for(lambda: len(watcher.bodies) == 5, timeout=120, what="the gave-up alert")
    assert watcher.bodies[4]["event"] == "gave_up"
    assert watcher.bodies[4]["incident"]["actions"] == []
