"""fl-telemetry's receiver (the sandbox's collector): what a real OTLP/HTTP exporter sends is
decoded and stored, on disk as OTLP JSON lines; what is not OTLP is refused in one sentence."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from tests.support.waiting import wait_for
from vmkeeper.telemetry import receiver


@pytest.fixture
def on_disk(tmp_path: Path) -> Iterator[receiver.Receiver]:
    running = receiver.start(receiver.Store(tmp_path))
    yield running
    running.stop()


def _post(url: str, body: bytes, content_type: str, **headers: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type, **headers})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.mark.parametrize("compression", [Compression.NoCompression, Compression.Gzip])
def test_spans_from_the_sdk_exporter_are_stored_with_ids_attributes_and_resource(
        on_disk: receiver.Receiver, tmp_path: Path, compression: Compression) -> None:
    exporter = OTLPSpanExporter(endpoint=f"{on_disk.url}/v1/traces", timeout=5,
                                compression=compression)
    provider = TracerProvider(resource=Resource.create({"service.name": "probe"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("outer") as outer, \
            tracer.start_as_current_span("inner", attributes={"n": 3, "argv": ["a", "b"]}):
        pass
    provider.shutdown()
    assert (tmp_path / "traces.jsonl").exists()
    spans = {span.name: (span, res) for span, res in receiver.Store(tmp_path).spans()}
    inner, resource = spans["inner"]
    assert inner.parent_span_id == spans["outer"][0].span_id
    assert inner.trace_id == outer.get_span_context().trace_id.to_bytes(16, "big")
    assert receiver.attributes(inner) == {"n": 3, "argv": ["a", "b"]}
    assert receiver.attributes(resource)["service.name"] == "probe"


def test_otlp_json_is_accepted_too_and_get_answers_the_counts(on_disk: receiver.Receiver):
    body = json.dumps({"resourceLogs": [{"scopeLogs": [{"logRecords": [
        {"body": {"stringValue": "hello"}, "severityNumber": 9}]}]}]}).encode()
    assert _post(f"{on_disk.url}/v1/logs", body, "application/json")[0] == 200
    (record,) = on_disk.store.logs()
    assert record.body.string_value == "hello"
    with urllib.request.urlopen(on_disk.url + "/", timeout=5) as answer:
        counts = json.load(answer)["counts"]
    assert counts["logs"] == 1 and counts["traces"] == 0 and counts["bytes"] == len(body)


@pytest.mark.parametrize(("path", "body", "content_type", "headers", "status", "words"), [
    ("/v1/traces", b"\xff\xff\xff not protobuf", "application/x-protobuf", {}, 400,
     "not an OTLP traces export request"),
    ("/v1/metrics", b"{}", "text/plain", {}, 415, "is not OTLP"),
    ("/v1/logs", b"not gzip", "application/x-protobuf", {"Content-Encoding": "gzip"}, 400,
     "not valid gzip"),
    ("/v1/logs", gzip.compress(b"\0" * (receiver.MAX_BODY_BYTES + 10)), "application/x-protobuf",
     {"Content-Encoding": "gzip"}, 413, "inflates past"),
    ("/v2/other", b"", "application/x-protobuf", {}, 404, "/v1/traces, /v1/metrics or /v1/logs"),
])
def test_what_is_not_otlp_is_refused_in_one_sentence_and_nothing_is_stored(
        on_disk: receiver.Receiver, tmp_path: Path, path: str, body: bytes, content_type: str,
        headers: dict[str, str], status: int, words: str) -> None:
    code, answer = _post(on_disk.url + path, body, content_type, **headers)
    assert code == status
    assert words in json.loads(answer)["error"]
    assert not list(tmp_path.glob("*.jsonl"))


def test_the_program_listens_on_both_ports_and_stops_on_sigterm(tmp_path: Path) -> None:
    ports = []
    for _ in range(2):
        with receiver.socket.create_server(("127.0.0.1", 0)) as probe:
            ports.append(probe.getsockname()[1])
    child = subprocess.Popen(
        [sys.executable, "-m", "vmkeeper.telemetry.receiver", "--http-port", str(ports[0]),
         "--grpc-port", str(ports[1]), "--store", str(tmp_path / "store")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert "otlp/http on" in (child.stdout.readline() if child.stdout else "")
        with receiver.socket.create_connection(("127.0.0.1", ports[1]), timeout=5):
            pass
        url = f"http://127.0.0.1:{ports[0]}/"
        wait_for(lambda: json.load(urllib.request.urlopen(url, timeout=5))["counts"]
                 ["grpc_connections"] == 1, 10, "the gRPC connection counted")
        child.terminate()
        assert child.wait(timeout=10) == 0
    finally:
        child.kill()
        child.wait()
