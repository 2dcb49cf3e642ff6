"""Shared fixtures. The sandbox fixture (one per test session) lives in tests/integration."""

from __future__ import annotations

import io
import sys
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.apache_dirs import apache_reachable
from tests.support.processes import Spawned
from vmkeeper import logs
from vmkeeper.adapters.apache import Apache
from vmkeeper.adapters.pm2 import Pm2
from vmkeeper.cli.main import main
from vmkeeper.sandbox import service as sandbox_service
from vmkeeper.sandbox.layout import Layout
from vmkeeper.settings import Settings

logs.configure()  # the test session is an entry point: importing vmkeeper configures nothing


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


@pytest.fixture
def spawned() -> Spawned:
    """The processes this test starts: ``spawned.left()`` is what still runs of them."""
    return Spawned()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The runbook's variables in the developer's shell must not leak into settings tests.
    for name in ("FRONTEND_RELEASES_KEEP", "FFMPEG_REVERSE_TIMEOUT_MS", "FFPROBE_TIMEOUT_MS",
                 "FFMPEG_BREAKER_FAILURE_THRESHOLD", "FFMPEG_BREAKER_COOLDOWN_MS",
                 "FFMPEG_BREAKER_SUCCESS_THRESHOLD", "FRONT_PORT", "PORT", "VMKEEPER_CONFIG"):
        monkeypatch.delenv(name, raising=False)


# --- the sandbox: one per test session, shared by every slow test that needs the VM ---------

# Apart from the demo's default base (10000), so a demo sandbox left up does not collide;
# VMKEEPER_TEST_BASE_PORT lets two test runs on one machine use disjoint ports.
TEST_BASE_PORT = int(__import__("os").environ.get("VMKEEPER_TEST_BASE_PORT", "20000"))


@dataclass(frozen=True)
class SandboxHandle:
    layout: Layout
    settings: Settings
    pm2: Pm2
    apache: Apache

    @property
    def config(self) -> Path:
        return self.layout.config

    def vmkeeper(self, cli: Callable[..., CliRun], *argv: str) -> CliRun:
        return cli("--config", str(self.layout.config), *argv)

    def restore(self) -> None:
        """Bring every part back (after a test that broke one on purpose)."""
        sandbox_service.up(self.layout, watch=False)


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxHandle]:
    with apache_reachable(f"vmkeeper-sandbox-{TEST_BASE_PORT}-") as folder:
        yield from _sandbox_at(Layout.at(folder, TEST_BASE_PORT))


def _sandbox_at(layout: Layout) -> Iterator[SandboxHandle]:
    try:
        sandbox_service.up(layout, watch=False)  # the watcher's tests start their own
        settings = sandbox_service.sandbox_settings(layout)
        yield SandboxHandle(
            layout, settings, sandbox_service.pm2_for(layout),
            sandbox_service.apache_for(layout, settings.proxy.bin),
        )
    finally:
        if layout.config.exists() or layout.marker.exists():
            sandbox_service.down(layout)
