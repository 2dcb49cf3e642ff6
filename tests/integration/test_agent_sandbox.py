"""The real agent process against the sandbox (its PM2, Apache, git) with the fixture frontend:
a signed webhook deploys; a forged one deploys nothing; a SIGKILLed agent's deploy is closed
as failed by the next agent's reaper while the site keeps serving."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import TEST_BASE_PORT
from tests.integration.deploy_support import DeployBed, bed_fixtures, child_env, wait_for
from vmkeeper import proc
from vmkeeper.agent import hooks

pytestmark = pytest.mark.slow
PORT = TEST_BASE_PORT + 3901  # not the sandbox's own agent (base + 3900)


bed_base, bed = bed_fixtures("agentbed")


@contextlib.contextmanager
def agent(bed: DeployBed, state: Path, env: dict[str, str] | None = None) -> Iterator[int]:
    argv = [sys.executable, "-m", "vmkeeper", "--config", str(bed.config), "--set",
            f"state_dir={state}", "agent", "serve", "--port", str(PORT)]
    with open(state.parent / f"{state.name}.log", "ab") as log, proc.start(
            argv, timeout=600, env=env, stdout=log, stderr=log) as child:
        wait_for(lambda: _answers(), 60, "the agent to answer")
        yield child.pid


def _answers() -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{PORT}/v1/status", timeout=2).status_code == 401
    except httpx.HTTPError:
        return False


def _token(bed: DeployBed, state: Path, scope: str) -> dict[str, str]:
    run = bed.cli("--config", str(bed.config), "--set", f"state_dir={state}", "agent", "token",
                  "add", scope, "--scope", scope, "--json")
    assert run.code == 0, run.stderr
    return {"Authorization": f"Bearer {json.loads(run.stdout)['token']}"}


def _push(bed: DeployBed, sha: str, secret: str, delivery: str) -> httpx.Response:
    body = json.dumps({"ref": "refs/heads/main", "after": sha}).encode()
    return httpx.post(f"http://127.0.0.1:{PORT}/v1/hooks/git", content=body, timeout=10,
                      headers={"X-Hub-Signature-256": hooks.signature(secret, body),
                               "X-GitHub-Delivery": delivery,
                               "content-type": "application/json"})


def _operation(op_id: str, read: dict[str, str]) -> dict[str, object]:
    answer = httpx.get(f"http://127.0.0.1:{PORT}/v1/operations/{op_id}", headers=read,
                       timeout=10)
    data: dict[str, object] = answer.json()
    return data


def test_a_signed_push_deploys_and_a_forged_one_deploys_nothing(
        bed: DeployBed, tmp_path: Path) -> None:
    secret = bed.sandbox.settings.agent.webhook_secret
    assert secret
    state = tmp_path / "state"
    read = _token(bed, state, "read")
    with agent(bed, state):
        before = bed.releases_json()["active"]
        sha = bed.commit("pushed")
        forged = _push(bed, sha, "x" * 40, "forged")
        assert forged.status_code == 401 and bed.releases_json()["active"] == before
        pushed = _push(bed, sha, secret, "delivery-1")
        assert pushed.status_code == 202, pushed.text
        op_id = pushed.json()["operation_id"]
        stream = httpx.get(f"http://127.0.0.1:{PORT}/v1/operations/{op_id}/events",
                           headers=read, timeout=300)
        assert "event: result" in stream.text and "npm run build" in stream.text
        outputs = [json.loads(line[6:]) for event in stream.text.split("\n\n")
                   if "event: output" in event for line in event.splitlines()
                   if line.startswith("data: ")]
        assert {e["step"] for e in outputs} == {"install", "build"}, outputs  # npm's own lines
        record = _operation(op_id, read)
        assert record["state"] == "succeeded", record
        assert bed.build_id_served() == sha
        assert _push(bed, sha, secret, "delivery-1").json()["deploy"] is False  # a replay
    verify = bed.cli("--config", str(bed.config), "--set", f"state_dir={state}", "audit",
                     "verify", "--json")
    assert verify.code == 0 and json.loads(verify.stdout)["records"] == 1


def test_a_sigkilled_agent_s_deploy_is_reaped_as_failed_and_the_site_serves(
        bed: DeployBed, tmp_path: Path) -> None:
    secret = bed.sandbox.settings.agent.webhook_secret
    assert secret
    state, flag = tmp_path / "state", tmp_path / "paused"
    read = _token(bed, state, "read")
    served = bed.build_id_served()
    env = {**child_env("build", flag), "PYTHONPATH": os.pathsep.join(sys.path)}
    with agent(bed, state, env) as pid:
        op_id = _push(bed, bed.commit("killed agent"), secret, "delivery-k").json()[
            "operation_id"]
        wait_for(flag.exists, 120, "the agent's deploy to reach the build")
        os.kill(pid, signal.SIGKILL)
    with agent(bed, state):
        record = _operation(op_id, read)
        assert record["state"] == "failed" and "stopped while" in str(record["error"])
        assert httpx.get(bed.site, timeout=10).status_code == 200
        assert bed.build_id_served() == served


def test_pushes_during_a_deploy_coalesce_and_cancel_before_the_switch_keeps_the_old_release(
        bed: DeployBed, tmp_path: Path) -> None:
    secret = bed.sandbox.settings.agent.webhook_secret
    assert secret
    state, flag = tmp_path / "state", tmp_path / "paused"
    operate = _token(bed, state, "operate")
    served, dirs = bed.build_id_served(), bed.release_dirs()
    env = {**child_env("install", flag, seconds=5), "PYTHONPATH": os.pathsep.join(sys.path)}
    with agent(bed, state, env):
        first = _push(bed, bed.commit("first"), secret, "c1").json()["operation_id"]
        wait_for(flag.exists, 120, "the first deploy to reach npm ci")
        second = _push(bed, bed.commit("second"), secret, "c2").json()
        newest = bed.commit("third")
        third = _push(bed, newest, secret, "c3").json()
        assert third["coalesced"] and third["operation_id"] == second["operation_id"]
        cancelled = httpx.post(f"http://127.0.0.1:{PORT}/v1/operations/{first}/cancel",
                               headers=operate, timeout=30).json()
        assert cancelled["cancelled"] and cancelled["removed_release"]
        assert bed.build_id_served() == served
        assert _operation(first, operate)["state"] == "cancelled"
        wait_for(lambda: _operation(second["operation_id"], operate)["state"] == "succeeded",
                 240, "the coalesced follow-up deploy")
        assert bed.build_id_served() == newest
    assert cancelled["removed_release"] not in bed.release_dirs()
    assert len(bed.release_dirs()) <= max(len(dirs), 2)
