"""Telemetry through the sandbox's own collector: fl-telemetry under PM2 is the OTLP receiver,
and what the agent, its operation worker and a one-shot `vmkeeper health` send arrives there,
decoded: one trace from the agent's request to the worker's steps and commands, and the health
families with their resource."""

from __future__ import annotations

import json
import sys

import httpx
import pytest

from tests.conftest import CliRun, SandboxHandle
from tests.support.waiting import wait_for
from vmkeeper import proc
from vmkeeper.sandbox.service import telemetry_store
from vmkeeper.telemetry.receiver import Store, attributes

pytestmark = pytest.mark.slow


def test_fl_telemetry_is_the_receiver_and_an_agent_recover_arrives_as_one_trace(
        sandbox: SandboxHandle, cli) -> None:
    ports = sandbox.layout.ports
    about = httpx.get(f"http://127.0.0.1:{ports.telemetry_http}/", timeout=5).json()
    assert about["service"] == "fl-telemetry"
    pm2_app = {a.name: a for a in sandbox.pm2.jlist()}[sandbox.settings.apps.telemetry.name]
    assert pm2_app.online and about["pid"] == pm2_app.pid  # PM2 watches the receiver itself

    made: CliRun = sandbox.vmkeeper(cli, "agent", "token", "add", "telemetry-proof",
                                    "--scope", "operate", "--json")
    assert made.code == 0, made.stderr
    headers = {"Authorization": f"Bearer {json.loads(made.stdout)['token']}"}
    agent = f"http://127.0.0.1:{ports.agent}"
    queued = httpx.post(f"{agent}/v1/recover", headers=headers, timeout=10)
    assert queued.status_code == 202, queued.text
    op_id = queued.json()["operation_id"]
    wait_for(lambda: httpx.get(f"{agent}/v1/operations/{op_id}", headers=headers, timeout=5)
             .json()["state"] in ("succeeded", "failed"), 120, "the recover operation to end")

    store = Store(telemetry_store(sandbox.layout))

    def the_trace() -> tuple | None:
        spans = store.spans()
        requests = [s for s, r in spans if s.name == "POST /v1/recover"
                    and attributes(r)["service.name"] == "vmkeeper-agent"]
        for request in requests:  # the agent exports its batch within ~5 s
            worker = [(s, r) for s, r in spans if s.name == "vmkeeper recover"
                      and s.parent_span_id == request.span_id]
            if worker:
                return request, worker[0], [s for s, _ in spans if s.trace_id == request.trace_id]
        return None

    request, (_operation, resource), trace = wait_for(the_trace, 30,
                                                     "the request's trace in fl-telemetry")
    assert attributes(request)["http.response.status_code"] == 202
    assert attributes(resource)["service.name"] == "vmkeeper"
    assert attributes(resource)["deployment.environment.name"] == "sandbox"
    commands = [s for s in trace if s.name.startswith("exec ")]
    assert commands, [s.name for s in trace]
    assert all("process.exit.code" in attributes(c) and "vmkeeper.command.seconds"
               in attributes(c) for c in commands)


def test_a_one_shot_health_sends_its_families_to_fl_telemetry(sandbox: SandboxHandle) -> None:
    before = len(Store(telemetry_store(sandbox.layout)).requests("metrics"))
    run = proc.run([sys.executable, "-m", "vmkeeper", "--config", str(sandbox.config),
                    "health", "--json"], timeout=120, check=False)
    assert run.returncode in (0, 1, 2), run.stderr
    # Handed to a detached exporter after the answer (telemetry/later.py); the sandbox's agent
    # and watcher export too, so what is waited for is health's own families from "vmkeeper".
    wanted = {"http.client.request.duration", "vmkeeper.health.check.status",
              "vmkeeper.pm2.app.up", "process.memory.usage"}

    def health_names() -> dict:
        names: dict = {}
        for request in Store(telemetry_store(sandbox.layout)).requests("metrics")[before:]:
            for rm in request.resource_metrics:
                if attributes(rm.resource).get("service.name") != "vmkeeper":
                    continue
                for sm in rm.scope_metrics:
                    names |= {m.name: rm.resource for m in sm.metrics}
        return names if wanted <= set(names) else {}

    names = wait_for(health_names, 30, "health's families at fl-telemetry")
    assert attributes(names["vmkeeper.pm2.app.up"])["service.name"] == "vmkeeper"
