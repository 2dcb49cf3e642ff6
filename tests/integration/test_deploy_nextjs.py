"""One deploy and one rollback of the sandbox's real Next.js 15.5 app (npm ci, next build)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import CliRun, SandboxHandle
from tests.integration.deploy_support import git
from vmkeeper import proc

pytestmark = pytest.mark.slow


def test_nextjs_deploy_then_rollback_previous(
    sandbox: SandboxHandle, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    site = sandbox.settings.public_url + "/"
    before = json.loads(sandbox.vmkeeper(cli, "releases", "--json").stdout)
    original = before["active"]
    assert original is not None
    dev = tmp_path / "dev"
    proc.run(["git", "clone", "-q", str(sandbox.layout.dir / "origin.git"), str(dev)], timeout=60)
    (dev / "frontend" / "DEPLOYED").write_text("a commit to deploy\n")
    git(dev, "add", "-A")
    git(dev, "commit", "-q", "-m", "deploy test")
    git(dev, "push", "-q", "origin", "HEAD:main")
    sha = git(dev, "rev-parse", "HEAD")

    run = sandbox.vmkeeper(cli, "deploy", "--json")
    data = json.loads(run.stdout)
    assert run.code == 0, (run.stderr, data)
    assert data["ok"] and data["sha"] == sha and data["previous"] == original
    assert data["dump_agrees"] is True
    steps = {s["name"]: s["seconds"] for s in data["steps"]}
    assert steps["install"] > 1 and steps["build"] > 1  # real npm ci and next build ran
    release_dir = sandbox.layout.releases / data["release"] / "frontend"
    assert (release_dir / "build" / "BUILD_ID").is_file()
    assert not (release_dir / "build" / "cache").exists() and not (release_dir / ".next").exists()
    page = httpx.get(site, timeout=15).text
    assert "vmkeeper sandbox" in page and data["release"] in page and str(release_dir) in page

    run = sandbox.vmkeeper(cli, "rollback", "--previous", "--json")
    back = json.loads(run.stdout)
    assert run.code == 0, run.stderr
    assert back["ok"] and back["active"] == original and back["previous"] == data["release"]
    page = httpx.get(site, timeout=15).text
    assert str(sandbox.layout.releases / original / "frontend") in page
    listed = json.loads(sandbox.vmkeeper(cli, "releases", "--json").stdout)
    assert listed["active"] == listed["dump_active"] == original
    assert {r["id"] for r in listed["releases"]} >= {original, data["release"]}
