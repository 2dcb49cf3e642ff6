"""`vmkeeper doctor` answers even when something it looks at never does (a hung mount)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vmkeeper.health.doctor import run_doctor
from vmkeeper.health.model import Layer, Status
from vmkeeper.settings import load_settings


@pytest.fixture
def never_answers(tmp_path: Path) -> Iterator[Path]:
    """A FIFO with no writer: reading it blocks in the kernel, like a file on a dead NFS mount."""
    fifo = tmp_path / "apache2.conf"
    os.mkfifo(fifo)
    yield fifo
    # Give the abandoned reader its end of file so its thread finishes with the test.
    with contextlib.suppress(OSError):
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))


def test_doctor_reports_a_hung_read_as_unanswered_and_still_checks_the_rest(
        never_answers: Path, tmp_path: Path) -> None:
    settings = load_settings(env={
        "VMKEEPER_PROXY_CONFIG": str(never_answers),
        "VMKEEPER_HEALTH_CHECK_TIMEOUT_S": "0.5",
        "VMKEEPER_STATE_DIR": str(tmp_path),
    }).settings
    started = time.monotonic()
    report = run_doctor(settings)
    assert time.monotonic() - started < 10
    checks = {check.name: check for check in report.checks}
    hung = checks["proxy_config"]
    assert hung.status is Status.UNKNOWN and hung.layer is Layer.APACHE
    assert "no answer within 2.5 s" in hung.summary
    # Everything else answered: the hang cost only its own check.
    assert checks["path:state_dir"].status is Status.OK
    assert checks["path:apache_config"].status is Status.OK
    assert {"node", "pm2", "ffmpeg", "apache"} <= checks.keys()
    # ...but the checks that read the hung file: the switch snippet is looked for in it too.
    readers = ("proxy_config", "apache:switch", "apache:reads")
    assert checks["apache:switch"].status is Status.UNKNOWN
    assert all(c.status is not Status.UNKNOWN for n, c in checks.items() if n not in readers)
    assert report.status in (Status.UNKNOWN, Status.CRITICAL)
