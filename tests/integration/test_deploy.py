"""deploy / releases / rollback against the sandbox's real git, npm, PM2 and Apache, with the
zero-dependency fixture frontend (a deploy takes seconds)."""

from __future__ import annotations

import json
import signal
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import CliRun, SandboxHandle
from tests.integration.deploy_support import (
    DeployBed,
    assert_runbook_end_state,
    child_env,
    git,
    wait_for,
)
from vmkeeper import proc
from vmkeeper.releases import handover

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bed_base(
    sandbox: SandboxHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DeployBed]:
    bed = DeployBed(sandbox, tmp_path_factory.mktemp("deploybed"), cli=lambda *a: None)  # type: ignore[arg-type,return-value]
    bed.setup()
    try:
        yield bed
    finally:
        sandbox.restore()  # the sandbox's own Next.js release serves again


@pytest.fixture
def bed(bed_base: DeployBed, cli: Callable[..., CliRun]) -> DeployBed:
    bed_base.cli = cli
    active = bed_base.releases_json()["active"]
    if active is None:  # first test of the module, or the frontend is not one of ours
        bed_base.commit("baseline")
        run, data = bed_base.deploy()
        assert run.code == 0, (run.stderr, data)
    return bed_base


def test_three_deploys_leave_two_releases_newest_active(bed: DeployBed) -> None:
    shas = []
    for number in range(3):
        shas.append(bed.commit(f"release {number}"))
        run, data = bed.deploy()
        assert run.code == 0, run.stderr
        assert data["ok"] and data["failed_step"] is None and data["error"] is None
        assert [s["name"] for s in data["steps"]] == [
            "pull", "archive", "env", "install", "build", "clean", "switch", "save"]
        assert all(s["ok"] and s["seconds"] >= 0 for s in data["steps"])
        assert data["active"] == data["release"] and data["dump_agrees"] is True
    releases = bed.releases_json()
    assert len(releases["releases"]) == 2
    newest = releases["releases"][0]
    assert newest["active"] and newest["in_dump"] and newest["sha"] == shas[-1]
    assert releases["active"] == releases["dump_active"] == newest["id"]
    assert bed.release_dirs() == sorted(r["id"] for r in releases["releases"])
    # What PM2 runs, and what a reboot would resurrect, is the new release with FRONT_PORT.
    app = bed.sandbox.pm2.app("frontend-dev")
    assert app is not None and app.online
    assert app.cwd == bed.releases / newest["id"] / "frontend"
    assert app.env_value("FRONT_PORT") == str(bed.sandbox.layout.ports.frontend)
    assert app.args == ("run", "start")
    dumped = next(a for a in bed.sandbox.pm2.read_dump() if a.name == "frontend-dev")
    assert dumped.cwd == app.cwd and dumped.env_value("FRONT_PORT") == app.env_value("FRONT_PORT")
    # The release itself: env file copied with its mode, caches gone, build kept.
    frontend = app.cwd
    assert stat.S_IMODE((frontend / ".env.production").stat().st_mode) == 0o600
    assert not (frontend / ".next").exists() and not (frontend / "build" / "cache").exists()
    assert (frontend / "build" / "index.html").is_file()
    assert bed.build_id_served() == shas[-1]  # through Apache
    finished = [r for r in bed.history() if r.get("phase") == "finished"]
    assert finished[-1]["result"] == "ok" and finished[-1]["sha"] == shas[-1]
    assert set(finished[-1]["steps"]) >= {"install", "build", "switch"}
    assert "failed_requests" in finished[-1] and finished[-1]["who"]


def test_a_failing_build_changes_nothing_live(bed: DeployBed) -> None:
    before = bed.releases_json()
    served = bed.build_id_served()
    bed.commit("break the build", {"frontend/FAIL_BUILD": "1"})
    try:
        run, data = bed.deploy()
        assert run.code == 1
        assert data["ok"] is False and data["failed_step"] == "build"
        assert "FAIL_BUILD marker present" in data["error"]  # the tail of the build's output
        assert "step 5 (build)" in run.stderr
        assert data["active"] == before["active"]
        assert bed.release_dirs() == sorted(r["id"] for r in before["releases"])
        assert bed.build_id_served() == served
        assert bed.history()[-1]["result"] == "failed"
    finally:
        bed.commit("fix the build", {"frontend/FAIL_BUILD": None})


def test_a_release_that_never_answers_is_reverted(bed: DeployBed) -> None:
    before = bed.releases_json()
    served = bed.build_id_served()
    bed.commit("never ready", {"frontend/NEVER_READY": "1"})
    try:
        run, data = bed.deploy()
        assert run.code == 1
        assert data["failed_step"] == "switch" and data["reverted"] is True
        assert "did not answer 200" in data["error"] and "reverted" in data["error"]
        assert data["active"] == before["active"]
        assert bed.release_dirs() == sorted(r["id"] for r in before["releases"])
        assert bed.build_id_served() == served
        after = bed.releases_json()
        assert after["dump_active"] == before["active"]  # a reboot starts the good one
        assert bed.history()[-1]["result"] == "reverted"
    finally:
        bed.commit("ready again", {"frontend/NEVER_READY": None})


def test_a_dirty_workspace_is_refused_and_left_alone(bed: DeployBed) -> None:
    package = bed.workspace / "frontend" / "package.json"
    original = package.read_text()
    package.write_text(original.replace('"private": true', '"private": false'))
    try:
        run, data = bed.deploy()
        assert run.code == 1 and data["failed_step"] == "pull"
        assert "uncommitted changes" in data["error"] and "frontend/package.json" in data["error"]
        assert "never resets" in data["error"]
        assert package.read_text() != original  # the operator's change is still there
    finally:
        package.write_text(original)


def test_a_diverged_branch_is_refused(bed: DeployBed) -> None:
    git(bed.dev, "push", "-q", "origin", "HEAD:refs/heads/feature")
    # A local commit on `feature` in the workspace, made without touching its files…
    git(bed.workspace, "fetch", "-q", "origin")
    tree = git(bed.workspace, "rev-parse", "origin/feature^{tree}")
    local = git(bed.workspace, "commit-tree", tree, "-p", "origin/feature", "-m", "local only")
    git(bed.workspace, "update-ref", "refs/heads/feature", local)
    # …and a different one pushed upstream.
    git(bed.dev, "commit", "-q", "--allow-empty", "-m", "upstream only")
    git(bed.dev, "push", "-q", "origin", "HEAD:refs/heads/feature")
    before = bed.releases_json()["active"]
    run, data = bed.deploy("--branch", "feature")
    assert run.code == 1 and data["failed_step"] == "pull"
    assert "diverged" in data["error"] and "only fast-forwards" in data["error"]
    assert bed.releases_json()["active"] == before
    assert git(bed.workspace, "rev-parse", "feature") == local  # not reset
    git(bed.workspace, "switch", "-q", "main")


def test_a_bad_branch_fails_at_pull(bed: DeployBed) -> None:
    run, data = bed.deploy("--branch", "no-such-branch")
    assert run.code == 1 and data["failed_step"] == "pull"
    assert "no-such-branch" in data["error"]


def test_rollback_to_previous_and_to_a_named_release(bed: DeployBed) -> None:
    bed.commit("for rollback")
    assert bed.deploy()[0].code == 0
    listed = bed.releases_json()["releases"]
    newest, older = listed[0]["id"], listed[1]["id"]
    run = bed.run("rollback", "--previous", "--json")
    assert run.code == 0, run.stderr
    data = json.loads(run.stdout)
    assert data["ok"] and data["active"] == older and data["previous"] == newest
    assert data["dump_agrees"] is True
    assert bed.build_id_served() == listed[1]["sha"]
    after = bed.releases_json()
    assert after["active"] == after["dump_active"] == older
    run = bed.run("rollback", newest, "--json")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout)["active"] == newest
    assert bed.build_id_served() == listed[0]["sha"]
    assert [r["command"] for r in bed.history()[-4:]] == ["rollback"] * 4


@pytest.mark.parametrize("release_id,code,message", [
    ("../../etc", 2, "path separator or '..'"),
    ("20260101T000000Z-abc1234/../x", 2, "path separator or '..'"),
    ("not-an-id", 2, "is not a release id"),
    ("20200101T000000Z-0123456789ab", 1, "No release"),
])
def test_unknown_or_hostile_release_ids_are_refused(
    bed: DeployBed, release_id: str, code: int, message: str
) -> None:
    before = bed.releases_json()
    run = bed.run("rollback", release_id)
    assert run.code == code and message in run.stderr
    assert bed.releases_json()["active"] == before["active"]


def test_rollback_to_a_release_without_build_output_is_refused(bed: DeployBed) -> None:
    broken = bed.releases / "20200101T000000Z-0123456789ab" / "frontend"
    broken.mkdir(parents=True)
    try:
        run = bed.run("rollback", broken.parent.name)
        assert run.code == 1 and "has no build/" in run.stderr
    finally:
        broken.rmdir()
        broken.parent.rmdir()


def test_dry_run_prints_the_plan_and_changes_nothing(bed: DeployBed) -> None:
    bed.commit("dry")
    dirs, history_lines = bed.release_dirs(), len(bed.history())
    workspace_head = git(bed.workspace, "rev-parse", "HEAD")
    run, data = bed.deploy("--dry-run")
    assert run.code == 0 and data["dry_run"] is True
    assert data["plan"][0]["name"] == "pull"
    commands = "\n".join(c for p in data["plan"] for c in p["commands"])
    assert "pm2 start npm --name frontend-dev -- run start" in commands
    assert "npm ci" in commands and "ionice" in commands and "merge --ff-only" in commands
    assert bed.release_dirs() == dirs and len(bed.history()) == history_lines
    assert git(bed.workspace, "rev-parse", "HEAD") == workspace_head
    human = bed.run("deploy", "--dry-run")
    assert human.code == 0 and "nothing will change" in human.stdout


def test_not_enough_disk_is_refused_before_building(bed: DeployBed) -> None:
    before = bed.release_dirs()
    run = bed.cli("--config", str(bed.config), "--set", "releases.disk_margin_mb=100000000",
                  "deploy", "--json")
    data = json.loads(run.stdout)
    assert run.code == 1 and data["failed_step"] == "archive"
    assert "not enough free disk space" in data["error"]
    assert bed.release_dirs() == before


def _paused_deploy(bed: DeployBed, pause_at: str, flag: Path, seconds: float = 120):  # type: ignore[no-untyped-def]
    return proc.start(bed.child_argv("deploy", "--json"), timeout=300,
                      env=child_env(pause_at, flag, seconds))


def test_a_second_deploy_or_rollback_is_refused_while_one_runs(
    bed: DeployBed, tmp_path: Path
) -> None:
    bed.commit("concurrent")
    flag = tmp_path / "paused"
    with _paused_deploy(bed, "install", flag, seconds=4) as first:
        wait_for(flag.exists, 60, "the first deploy to reach npm ci")
        run = bed.run("deploy", "--json")
        assert run.code == 1
        assert f"pid {first.pid}" in run.stderr and "branch main" in run.stderr
        assert "deploy since" in run.stderr  # the holder: what it runs and since when
        refused = bed.run("rollback", "--previous")
        assert refused.code == 1 and f"pid {first.pid}" in refused.stderr
        waited = bed.run("deploy", "--json", "--wait", "120")  # queues behind the first
        assert waited.code == 0, waited.stderr
        assert first.wait() == 0
    assert json.loads(waited.stdout)["ok"] is True


# SIGKILL at every step: at its start, and for the long or critical ones once its work is done;
# and at every sub-step of the zero-downtime switch (the sandbox's Apache has the snippet).
SWITCH_SUB_STEPS = [f"switch/{name}" for name in handover.SUB_STEPS]
KILL_POINTS = ["pull", "archive", "env", "install", "build", "clean", "switch", "save",
               "install:end", "build:end", "switch:end", "save:end", *SWITCH_SUB_STEPS]
# From the flip on, Apache sends requests to the new release (through the temporary app until
# `back`); from `back` on, frontend-dev itself runs it.
SERVES_NEW = {"switch/drain", "switch/restart", "switch/back", "switch/retire", "switch:end",
              "save", "save:end"}
ACTIVE_NEW = {"switch/back", "switch/retire", "switch:end", "save", "save:end"}
# Between the flip and `back` both servers run; Apache was seen to keep sending requests to the
# old one for several seconds after the map changed (the drain waits for that), so either
# release may answer — what matters is that one does.
EITHER = {"switch/drain", "switch/restart"}


@pytest.mark.parametrize("point", KILL_POINTS)
def test_sigkill_at_each_step_leaves_the_site_serving_and_the_next_deploy_cleans_up(
    bed: DeployBed, tmp_path: Path, point: str
) -> None:
    before = bed.releases_json()
    old = before["active"]
    old_sha = next(r["sha"] for r in before["releases"] if r["id"] == old)
    new_sha = bed.commit(f"killed at {point}")
    flag = tmp_path / "paused"
    with _paused_deploy(bed, point, flag) as child:
        wait_for(flag.exists, 90, f"the deploy to reach {point}")
        signal_sent = time.monotonic()
        proc.kill_group(child.pid, signal.SIGKILL)
        child.wait()
    # The site serves at once: the old release, or the new one once Apache was flipped to it.
    response = httpx.get(bed.site, timeout=10)
    assert response.status_code == 200, f"site down after SIGKILL at {point}"
    served = response.headers["x-build-id"]
    if point in EITHER:
        assert served in (old_sha, new_sha), point
    else:
        assert served == (new_sha if point in SERVES_NEW else old_sha), point
    active = bed.releases_json()["active"]
    assert (active != old) == (point in ACTIVE_NEW), (point, active, old)
    assert time.monotonic() - signal_sent < 30
    # The next deploy takes the lock at once, succeeds, and leaves only good releases.
    run, data = bed.deploy()
    assert run.code == 0, (point, run.stderr)
    assert any("did not finish" in note for note in data["notes"])
    listed = bed.releases_json()
    assert all(r["state"] == "good" for r in listed["releases"]), listed
    assert len(listed["releases"]) == 2
    assert listed["active"] == listed["dump_active"] == data["release"]
    assert not [p for p in bed.releases.iterdir() if p.name.startswith((".trash-", ".archive-"))]
    assert_runbook_end_state(bed, data["release"])  # no temporary app, nothing on the spare


def test_sigkill_mid_build_kills_the_orphaned_build_on_the_next_deploy(
    bed: DeployBed, tmp_path: Path
) -> None:
    import psutil

    old = bed.releases_json()["active"]
    bed.commit("slow build killed")
    flag = tmp_path / "paused"
    env = {**child_env("none", flag), "BUILD_DELAY_MS": "60000"}
    builders: list[psutil.Process] = []

    def build_running() -> bool:
        builders[:] = [
            p for p in psutil.process_iter(["cmdline", "cwd"])
            if "build.js" in " ".join(p.info.get("cmdline") or [])
            and str(bed.releases) in (p.info.get("cwd") or "")
        ]
        return bool(builders)

    with proc.start(bed.child_argv("deploy", "--json"), timeout=300, env=env) as child:
        wait_for(build_running, 60, "npm run build to run in the new release")
        proc.kill_group(child.pid, signal.SIGKILL)
        child.wait()
    assert all(p.is_running() for p in builders)  # the build outlived its deploy
    assert httpx.get(bed.site, timeout=10).status_code == 200
    assert bed.releases_json()["active"] == old
    run, data = bed.deploy()
    assert run.code == 0, run.stderr
    assert data["cleaned"], data
    psutil.wait_procs(builders, timeout=10)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in builders)
    assert all(r["state"] == "good" for r in bed.releases_json()["releases"])
