"""One deploy and one rollback of the sandbox's real Next.js 15.5 app (npm ci, next build)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.conftest import CliRun, SandboxHandle
from tests.integration.deploy_support import git
from vmkeeper import proc
from vmkeeper.releases import cleanup, live

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


STATIC_URL = re.compile(r"""/_next/static/[^"'\s\\)]+""")


def test_a_page_of_a_retained_release_keeps_its_assets_until_the_release_is_pruned(
    sandbox: SandboxHandle, cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    site = sandbox.settings.public_url + "/"
    root = sandbox.layout.releases
    saved = httpx.get(site, timeout=15).text  # a browser's page, loaded before the deploy
    urls = sorted(set(STATIC_URL.findall(saved)))
    assert urls, saved[:500]
    old = json.loads(sandbox.vmkeeper(cli, "releases", "--json").stdout)["active"]
    # A commit whose build changes its chunks: a client component on the page.
    dev = tmp_path / "dev"
    proc.run(["git", "clone", "-q", str(sandbox.layout.dir / "origin.git"), str(dev)], timeout=60)
    app = dev / "frontend" / "app"
    (app / "skew-marker.js").write_text(
        "'use client';\nexport default function SkewMarker() {\n"
        f"  return <p id=\"skew\">{tmp_path.name}</p>;\n}}\n")
    page = (app / "page.js").read_text()
    (app / "page.js").write_text("import SkewMarker from './skew-marker';\n" + page.replace(
        "<h1>vmkeeper sandbox</h1>", "<h1>vmkeeper sandbox</h1>\n      <SkewMarker />"))
    git(dev, "add", "-A")
    git(dev, "commit", "-q", "-m", "a client component: new chunks")
    git(dev, "push", "-q", "origin", "HEAD:main")

    # keep=3: whatever ran before, the release the saved page came from stays retained.
    run = sandbox.vmkeeper(cli, "--set", "releases.keep=3", "deploy", "--json")
    data = json.loads(run.stdout)
    assert run.code == 0, (run.stderr, data)
    assert data["failed_requests"] == 0 and old not in data["pruned"], data
    new_build = root / data["release"] / "frontend" / "build"
    assert (new_build / "BUILD_ID").read_text().strip() == data["sha"]  # stable per commit
    old_only = [u for u in urls if not (new_build / "static" / u.removeprefix(
        "/_next/static/")).is_file()]
    assert old_only, "the new build kept every chunk: this test would prove nothing"
    answers = {u: httpx.get(sandbox.settings.public_url + u, timeout=15) for u in urls}
    assert {u: r.status_code for u, r in answers.items() if r.status_code != 200} == {}
    assert "javascript" in answers[next(u for u in urls if u.endswith(".js"))].headers[
        "content-type"]

    # The old release pruned (as a deploy's save step prunes): its own chunks are gone.
    pruned = cleanup.prune(root, 1, live.read_live(sandbox.settings, sandbox.pm2))
    assert old in pruned
    for url in old_only:
        assert httpx.get(sandbox.settings.public_url + url, timeout=15).status_code == 404, url
    assert httpx.get(site, timeout=15).status_code == 200
