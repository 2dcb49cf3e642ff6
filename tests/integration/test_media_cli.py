"""`vmkeeper media submit / jobs / breaker` against the sandbox's media service (a PM2 app)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.conftest import CliRun, SandboxHandle
from tests.media_service.helpers import make_video

pytestmark = pytest.mark.slow


def test_submit_wait_reverses_and_jobs_lists_it(
    sandbox: SandboxHandle, cli: Callable[..., CliRun]
) -> None:
    make_video(sandbox.settings.media.storage_root / "cli" / "clip.mp4")
    run = sandbox.vmkeeper(cli, "media", "submit", "cli/clip.mp4", "--wait", "--json")
    assert run.code == 0, run.stderr
    job = json.loads(run.stdout)
    assert job["state"] == "done" and job["key"] == "cli/clip.mp4"
    output = sandbox.settings.media.storage_root / "reversed" / "cli" / "clip.mp4"
    assert output.stat().st_size > 0

    again = json.loads(sandbox.vmkeeper(cli, "media", "submit", "cli/clip.mp4", "--json").stdout)
    assert again["state"] == "done"  # the output is current: no second FFmpeg run

    listed = json.loads(sandbox.vmkeeper(cli, "media", "jobs", "--json").stdout)["jobs"]
    assert job["id"] in {entry["id"] for entry in listed}
    human = sandbox.vmkeeper(cli, "media", "jobs")
    assert listed[0]["id"] in human.stdout and "done" in human.stdout


def test_breaker_reports_closed_with_its_thresholds(
    sandbox: SandboxHandle, cli: Callable[..., CliRun]
) -> None:
    status = json.loads(sandbox.vmkeeper(cli, "media", "breaker", "--json").stdout)
    assert status["state"] == "closed"
    assert status["failure_threshold"] == sandbox.settings.media.breaker.failure_threshold
    assert "breaker closed" in sandbox.vmkeeper(cli, "media", "breaker").stdout


def test_rejected_input_exits_1_and_escaping_key_is_refused(
    sandbox: SandboxHandle, cli: Callable[..., CliRun]
) -> None:
    fake = sandbox.settings.media.storage_root / "cli" / "notes.mp4"
    fake.parent.mkdir(parents=True, exist_ok=True)
    fake.write_text("this is not a video\n")
    run = sandbox.vmkeeper(cli, "media", "submit", "cli/notes.mp4", "--wait", "--json")
    assert run.code == 1
    assert json.loads(run.stdout)["state"] == "rejected"

    escape = sandbox.vmkeeper(cli, "media", "submit", "../../vmkeeper.toml")
    assert escape.code != 0 and "Traceback" not in escape.stderr
    assert escape.stderr.strip()


def test_wrong_token_is_a_clear_error(sandbox: SandboxHandle, cli: Callable[..., CliRun]) -> None:
    run = sandbox.vmkeeper(cli, "--set", "media.token=wrong", "media", "jobs")
    assert run.code == 2  # a settings problem: media.token does not match the service
    assert "token" in run.stderr and "Traceback" not in run.stderr
