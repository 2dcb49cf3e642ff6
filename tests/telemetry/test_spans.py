"""Traces across the agent, in the fast tier: a span per request (kind SERVER, the route's
template), continuing a caller's ``traceparent``; the operation it queues carries its context to
the worker process (``TRACEPARENT``), whose spans reach the collector under the request's span;
a media job submitted in a request runs in that request's trace. The agent's own spans are read
from an in-memory exporter; the worker's from the receiver (another process)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from opentelemetry import trace
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests.media_service.fakes import scripted_queue
from tests.media_service.helpers import settings_for
from tests.support import otlp
from vmkeeper import telemetry
from vmkeeper.agent import auth
from vmkeeper.agent.api import create_app
from vmkeeper.agent.runner import Runner
from vmkeeper.agent.store import Store
from vmkeeper.media.jobs import Job, WorkerMark
from vmkeeper.media.runner import Outcome
from vmkeeper.settings import Settings

CALLER_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = f"00-{CALLER_TRACE}-00f067aa0ba902b7-01"


def _traced(settings: Settings) -> InMemorySpanExporter:
    handle = telemetry.setup(settings, "vmkeeper-agent")
    assert handle is not None
    memory = InMemorySpanExporter()
    handle.tee_spans(memory)
    return memory


@pytest.fixture
def agent(tmp_path: Path, collector) -> Iterator[tuple[TestClient, Runner, Callable[[str], dict],
                                                       InMemorySpanExporter, Path]]:
    url, _ = collector
    config = tmp_path / "vmkeeper.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[releases]\nroot = '
                      f'"{tmp_path / "releases"}"\n[telemetry]\notlp_endpoint = "{url}"\n')
    settings = Settings.model_validate({"state_dir": str(tmp_path / "state"),
                                        "releases": {"root": str(tmp_path / "releases")},
                                        "telemetry": {"otlp_endpoint": url}})
    memory = _traced(settings)
    store = Store(settings.state_dir)
    runner = Runner(store, settings, tmp_path / "ops", {"VMKEEPER_CONFIG": str(config)})
    client = TestClient(create_app(settings, store, runner))

    def token(scope: str) -> dict[str, str]:
        made = auth.add(settings.state_dir, scope, auth.Scope(scope)).token
        return {"Authorization": f"Bearer {made}"}

    yield client, runner, token, memory, config


def test_each_request_is_a_server_span_named_by_its_route_not_its_path(agent) -> None:
    client, _runner, token, memory, _ = agent
    answer = client.get("/v1/operations/no-such-op", headers=token("read"))
    assert answer.status_code == 404
    client.get("/metrics")  # no token: 401, a span all the same
    first, second = memory.get_finished_spans()
    assert first.name == "GET /v1/operations/{op_id}" and first.kind is trace.SpanKind.SERVER
    assert first.attributes["http.route"] == "/v1/operations/{op_id}"
    assert first.attributes["url.path"] == "/v1/operations/no-such-op"
    assert first.attributes["http.response.status_code"] == 404
    assert first.attributes["vmkeeper.request.id"] == answer.headers["X-Request-Id"]
    assert second.name == "GET /metrics" and second.attributes["http.response.status_code"] == 401
    assert first.context.trace_id != second.context.trace_id  # each request its own trace


def test_a_callers_traceparent_is_continued(agent) -> None:
    client, _runner, token, memory, _ = agent
    client.get("/metrics", headers={**token("read"), "traceparent": CALLER})
    (span,) = memory.get_finished_spans()
    assert f"{span.context.trace_id:032x}" == CALLER_TRACE
    assert f"{span.parent.span_id:016x}" == "00f067aa0ba902b7"


def test_the_queued_operations_worker_continues_the_requests_trace(agent, collector) -> None:
    client, runner, token, memory, _ = agent
    _url, received = collector
    answer = client.post("/v1/rollback", json={"release": "20990101T000000Z-abc1234"},
                         headers=token("operate"))
    assert answer.status_code == 202, answer.text
    (request,) = memory.get_finished_spans()
    assert request.name == "POST /v1/rollback"
    op_id = answer.json()["operation_id"]
    carried = runner._traces[op_id]["TRACEPARENT"]
    assert carried.split("-")[1:3] == [f"{request.context.trace_id:032x}",
                                       f"{request.context.span_id:016x}"]
    # The runner starts the real worker: a rollback to a release that is not there.
    store = runner.store
    runner.run_one(store.get(op_id))
    assert store.get(op_id).state.value == "failed"
    spans = {span.name: (span, resource) for span, resource in received.spans()}
    operation, resource = spans["vmkeeper rollback"]
    assert operation.trace_id == request.context.trace_id.to_bytes(16, "big")
    assert operation.parent_span_id == request.context.span_id.to_bytes(8, "big")
    assert otlp.attributes(resource)["service.name"] == "vmkeeper"
    (record,) = [r for r in received.logs() if r.event_name == "vmkeeper.rollback"]
    assert record.trace_id == operation.trace_id  # its log record, in the same trace


class _Traced:
    """An executor that notes the trace its job ran in (what the real one's span joins)."""

    def __init__(self) -> None:
        self.contexts: list[trace.SpanContext] = []

    def run(self, job: Job, source: Path, destination: Path,
            on_start: Callable[[WorkerMark], None]) -> Outcome:
        on_start(WorkerMark(None, None, None))
        with telemetry.span("media job") as span:
            self.contexts.append(span.get_span_context())
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(b"reversed")
        return Outcome(True, details={"output_size_bytes": 1})


def test_a_media_job_runs_in_the_trace_of_the_request_that_submitted_it(tmp_path: Path):
    settings = settings_for(tmp_path).model_copy(update={"telemetry": Settings.model_validate(
        {"telemetry": {"otlp_endpoint": "http://127.0.0.1:9"}}).telemetry})
    memory = _traced(settings)
    (tmp_path / "uploads" / "a.mp4").write_bytes(b"video")
    queue, _executor, _ = scripted_queue(settings)
    traced = _Traced()
    queue.runner.executor = traced
    with telemetry.span("POST /v1/media/reverse") as request:
        queue.submit("a.mp4")
    assert queue.runner.run_once() is not None  # on another thread in the service
    (job,) = traced.contexts
    assert job.trace_id == request.get_span_context().trace_id
    (finished,) = [s for s in memory.get_finished_spans() if s.name == "media job"]
    assert finished.parent.span_id == request.get_span_context().span_id
    assert queue.runner.traces == {}  # handed over, not kept


def test_commands_run_by_a_gatherings_threads_stay_in_the_callers_trace(tmp_path: Path):
    from vmkeeper import proc
    from vmkeeper.gather import Gathering

    memory = _traced(Settings.model_validate({"telemetry": {"otlp_endpoint":
                                                            "http://127.0.0.1:9"}}))
    gathering = Gathering(timeout_s=10)
    jobs = [gathering.add(f"job {n}", lambda: proc.run(["true"], timeout=5).returncode)
            for n in range(3)]
    with telemetry.span("vmkeeper health") as outer:
        gathering.run()
    assert [job.got.value for job in jobs] == [0, 0, 0]
    commands = [s for s in memory.get_finished_spans() if s.name == "exec true"]
    assert len(commands) == 3
    assert {s.parent.span_id for s in commands} == {outer.get_span_context().span_id}
