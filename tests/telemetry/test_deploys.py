"""Deploys in the fast tier's fake world (real git, fake PM2, fake site) with telemetry on: the
trace's shape, bounded series after 20 deploys, and a silent collector costing at most 2 s."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.fakes.world import FakeVm, commit
from tests.support import otlp
from vmkeeper import telemetry
from vmkeeper.agent import auth
from vmkeeper.agent.api import create_app
from vmkeeper.agent.runner import Runner
from vmkeeper.agent.store import Store
from vmkeeper.progress import silent
from vmkeeper.releases import deploy
from vmkeeper.releases.results import STEPS, DeployResult
from vmkeeper.settings import Settings


@pytest.fixture
def vm(tmp_path: Path) -> FakeVm:
    return FakeVm.ready_to_deploy(tmp_path)


def _pointed_at(vm: FakeVm, url: str, enabled: bool = True) -> None:
    vm.settings = vm.settings.model_copy(update={"telemetry": vm.settings.telemetry.model_copy(
        update={"otlp_endpoint": url, "enabled": enabled})})


def _deploy(vm: FakeVm, message: str) -> DeployResult:
    """What `vmkeeper deploy` does around the service (cli/deploy.py), on the fake world."""
    commit(vm.settings.workspace.path, message, {"page.txt": message})
    with telemetry.operation(vm.settings, "deploy") as handle:
        result = deploy.deploy(vm.settings, switcher=vm.switcher(),
                               progress=telemetry.steps(silent))
        if handle is not None:
            handle.record_operation("deploy", result.ok, result.seconds, result.failed_requests,
                                    revision=result.sha, record={"message": result.error or "ok"})
    return result


def test_a_deploy_is_one_trace_with_a_span_per_step_and_its_commands_below(vm, collector):
    url, received = collector
    _pointed_at(vm, url)
    assert _deploy(vm, "one").ok
    spans = [span for span, _ in received.spans()]
    (root,) = [s for s in spans if s.name == "vmkeeper deploy"]
    steps = {s.name: s for s in spans
             if s.parent_span_id == root.span_id and s.name.startswith("step ")}
    assert set(steps) == {f"step {name}" for name in STEPS}
    commands = [s for s in spans if s.name.startswith("exec ")]
    under = {s.span_id for s in steps.values()} | {root.span_id}  # resolving the branch: root
    assert commands and all(c.parent_span_id in under for c in commands)
    assert sum(c.parent_span_id != root.span_id for c in commands) > len(commands) // 2
    assert "exec git" in {c.name for c in commands}


@pytest.mark.slow  # twenty real-git deploys: ~35 s on the shared machine
def test_twenty_deploys_leave_the_same_series_as_ten(vm, collector):
    url, _ = collector
    _pointed_at(vm, url)
    handle = telemetry.setup(vm.settings, "vmkeeper-agent")  # one long-running handle
    counts = []
    for n in range(20):
        assert _deploy_in(handle, vm, f"change {n}").ok
        if n in (9, 19):
            counts.append(len([line for line in handle.prometheus_text().splitlines()
                               if line and not line.startswith("#")]))
    text = handle.prometheus_text()
    assert counts[0] == counts[1], counts
    assert sum(line.startswith("vmkeeper_release_info{") for line in text.splitlines()) == 1
    assert 'deployment_duration_seconds_count{deployment_operation="deploy",' \
           'deployment_status="succeeded"} 20' in text


def _deploy_in(handle, vm: FakeVm, message: str) -> DeployResult:
    commit(vm.settings.workspace.path, message, {"page.txt": message})
    with telemetry.span("vmkeeper deploy"):
        result = deploy.deploy(vm.settings, switcher=vm.switcher(),
                               progress=telemetry.steps(silent))
        handle.record_operation("deploy", result.ok, result.seconds, result.failed_requests,
                                revision=result.sha, record={"message": "ok"})
    return result


@pytest.mark.parametrize("mode", ["down", "hang"])
def test_a_deploy_with_a_down_or_silent_collector_takes_at_most_2_s_longer(vm, mode):
    _pointed_at(vm, "http://127.0.0.1:9", enabled=False)
    assert _deploy(vm, "warm").ok  # a first deploy does more (no previous release): not timed
    started = time.monotonic()
    assert _deploy(vm, "off").ok
    off = time.monotonic() - started
    servers = otlp.serve("hang")
    url, _ = next(servers)
    _pointed_at(vm, url if mode == "hang" else "http://127.0.0.1:9")
    try:
        started = time.monotonic()
        assert _deploy(vm, "on").ok
        on = time.monotonic() - started
    finally:
        servers.close()
    assert on - off <= 2.0, (off, on)


def test_the_agents_metrics_need_a_read_token_and_carry_the_families(tmp_path: Path) -> None:
    settings = Settings.model_validate({"state_dir": str(tmp_path),
                                        "telemetry": {"otlp_endpoint": "http://127.0.0.1:9"}})
    handle = telemetry.setup(settings, "vmkeeper-agent")
    handle.record_operation("deploy", True, 42.0, 0, revision="ab" * 20, record={"message": "ok"})
    store = Store(tmp_path)
    client = TestClient(create_app(settings, store, Runner(store, settings, tmp_path / "ops")))
    read = auth.add(tmp_path, "reader", auth.Scope.READ).token
    assert client.get("/metrics").status_code == 401
    answer = client.get("/metrics", headers={"Authorization": f"Bearer {read}"})
    assert answer.status_code == 200
    assert f'vmkeeper_release_info{{vcs_ref_head_revision="{"ab" * 20}"}} 1' in answer.text
    assert "deployment_duration_seconds_count" in answer.text
