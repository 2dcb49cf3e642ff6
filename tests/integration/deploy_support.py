"""A deploy test bed on the session sandbox: its PM2, Apache and ports, but a workspace whose
frontend/ is the zero-dependency fixture, a bare origin to push to, and its own releases root.
Leaving the bed restores the sandbox's own frontend (sandbox.restore())."""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import CliRun, SandboxHandle
from tests.support.waiting import wait_for  # noqa: F401 - re-exported for the deploy tests
from vmkeeper import proc
from vmkeeper.adapters import apache, host
from vmkeeper.releases import handover
from vmkeeper.sandbox.layout import ASSETS

GIT_ID = ["-c", "user.name=test", "-c", "user.email=test@localhost"]


def git(repo: Path, *args: str) -> str:
    return proc.run(["git", "-C", str(repo), *GIT_ID, *args], timeout=60).stdout.strip()


@dataclass
class DeployBed:
    sandbox: SandboxHandle
    dir: Path
    cli: Callable[..., CliRun]

    @property
    def origin(self) -> Path:
        return self.dir / "origin.git"

    @property
    def dev(self) -> Path:  # a developer's clone: commits land on origin from here
        return self.dir / "dev"

    @property
    def workspace(self) -> Path:
        return self.dir / "workspace"

    @property
    def releases(self) -> Path:
        return self.dir / "releases"

    @property
    def config(self) -> Path:
        return self.dir / "vmkeeper.toml"

    @property
    def site(self) -> str:
        return self.sandbox.settings.public_url + "/"

    def setup(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        proc.run(["git", "init", "-q", "--bare", "-b", "main", str(self.origin)], timeout=30)
        proc.run(["git", "clone", "-q", str(self.origin), str(self.dev)], timeout=30)
        shutil.copytree(ASSETS / "fixture-frontend", self.dev / "frontend")
        (self.dev / ".gitignore").write_text("node_modules/\nbuild/\n.next/\n.turbo/\n.env*\n")
        git(self.dev, "add", "-A")
        git(self.dev, "commit", "-q", "-m", "fixture frontend")
        git(self.dev, "push", "-q", "origin", "HEAD:main")
        proc.run(["git", "clone", "-q", str(self.origin), str(self.workspace)], timeout=30)
        env_file = self.workspace / "frontend" / ".env.production"
        env_file.write_text("SECRET_TOKEN=from-the-live-workspace\n")
        env_file.chmod(0o600)
        text = self.sandbox.config.read_text()
        text = text.replace(f'path = "{self.sandbox.layout.workspace}"',
                            f'path = "{self.workspace}"')
        text = text.replace(f'root = "{self.sandbox.layout.releases}"',
                            f'root = "{self.releases}"\nready_timeout_s = 6\ndisk_margin_mb = 10')
        assert str(self.workspace) in text and str(self.releases) in text
        self.config.write_text(text)

    def commit(self, message: str, files: dict[str, str | None] | None = None) -> str:
        """Commit on origin/main through the dev clone (None deletes a file); return the sha."""
        git(self.dev, "pull", "-q", "--ff-only", "origin", "main")
        for name, content in (files or {"frontend/VERSION": message}).items():
            path = self.dev / name
            if content is None:
                path.unlink()
            else:
                path.write_text(content)
        git(self.dev, "add", "-A")
        git(self.dev, "commit", "-q", "--allow-empty", "-m", message)
        git(self.dev, "push", "-q", "origin", "HEAD:main")
        return git(self.dev, "rev-parse", "HEAD")

    def run(self, *argv: str) -> CliRun:
        return self.cli("--config", str(self.config), *argv)

    def deploy(self, *argv: str) -> tuple[CliRun, dict[str, Any]]:
        run = self.run("deploy", "--json", *argv)
        return run, json.loads(run.stdout)

    def releases_json(self) -> dict[str, Any]:
        run = self.run("releases", "--json")
        assert run.code == 0, run.stderr
        data: dict[str, Any] = json.loads(run.stdout)
        return data

    def release_dirs(self) -> list[str]:
        return sorted(p.name for p in self.releases.iterdir() if p.is_dir())

    def build_id_served(self) -> str | None:
        response = httpx.get(self.site, timeout=10)
        assert response.status_code == 200, response.text[:300]
        return response.headers.get("x-build-id")

    def history(self) -> list[dict[str, Any]]:
        path = self.releases / "history.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def child_argv(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", "vmkeeper", "--config", str(self.config), *argv]


def child_env(pause_at: str, flag: Path, seconds: float = 120) -> dict[str, str]:
    return {
        "VMKEEPER_TEST_PAUSE_AT_STEP": pause_at,
        "VMKEEPER_TEST_PAUSE_FILE": str(flag),
        "VMKEEPER_TEST_PAUSE_SECONDS": str(seconds),
        "PYTHONPATH": os.pathsep.join(sys.path),
    }


def assert_runbook_end_state(bed: DeployBed, release: str) -> None:
    """frontend-dev from the release on FRONT_PORT, saved; nothing of the switch left."""
    settings, pm2 = bed.sandbox.settings, bed.sandbox.pm2
    app = pm2.app("frontend-dev")
    assert app is not None and app.online and app.cwd == bed.releases / release / "frontend"
    assert app.env_value("FRONT_PORT") == str(settings.apps.frontend.port)
    assert app.args == ("run", "start")
    names = [a.name for a in pm2.jlist()]
    assert handover.temp_name(settings) not in names
    assert handover.temp_name(settings) not in [a.name for a in pm2.read_dump()]
    dumped = next(a for a in pm2.read_dump() if a.name == "frontend-dev")
    assert dumped.cwd == app.cwd
    assert host.listeners_psutil([settings.releases.spare_port]) == []
    routed = apache.map_path(settings.proxy.frontend_include).read_text()
    assert apache.map_port(routed) == settings.apps.frontend.port
    assert httpx.get(f"http://127.0.0.1:{settings.apps.frontend.port}/", timeout=10
                     ).status_code == 200


def bed_fixtures(name: str) -> tuple[Any, Any]:
    """A module's ``bed_base`` (one bed per module, the sandbox restored after) and ``bed``
    (with a baseline release deployed) fixtures: ``bed_base, bed = bed_fixtures("x")``."""
    import pytest

    @pytest.fixture(scope="module")
    def bed_base(sandbox: SandboxHandle,
                 tmp_path_factory: pytest.TempPathFactory) -> Any:
        made = DeployBed(sandbox, tmp_path_factory.mktemp(name), cli=lambda *a: None)  # type: ignore[arg-type,return-value]
        made.setup()
        try:
            yield made
        finally:
            sandbox.restore()

    @pytest.fixture
    def bed(bed_base: DeployBed, cli: Callable[..., CliRun]) -> DeployBed:
        bed_base.cli = cli
        if bed_base.releases_json()["active"] is None:
            bed_base.commit("baseline")
            run, data = bed_base.deploy()
            assert run.code == 0, (run.stderr, data)
        return bed_base

    return bed_base, bed
