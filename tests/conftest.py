"""Shared fixtures. The sandbox fixture (one per test session) lives in tests/integration."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass

import pytest

from vmkeeper.cli.main import main


@dataclass(frozen=True)
class CliRun:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., CliRun]:
    """Run the CLI in-process through main(argv), capturing stdout and stderr."""

    def run(*argv: str) -> CliRun:
        out, err = io.StringIO(), io.StringIO()
        monkeypatch.setattr(sys, "argv", ["vmkeeper", *argv])
        with redirect_stdout(out), redirect_stderr(err):
            code = main(list(argv))
        return CliRun(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The runbook's variables in the developer's shell must not leak into settings tests.
    for name in ("FRONTEND_RELEASES_KEEP", "FFMPEG_REVERSE_TIMEOUT_MS", "FFPROBE_TIMEOUT_MS",
                 "FFMPEG_BREAKER_FAILURE_THRESHOLD", "FFMPEG_BREAKER_COOLDOWN_MS",
                 "FFMPEG_BREAKER_SUCCESS_THRESHOLD", "FRONT_PORT", "PORT", "VMKEEPER_CONFIG"):
        monkeypatch.delenv(name, raising=False)
