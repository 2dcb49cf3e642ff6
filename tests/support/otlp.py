"""A stand-in OTLP/HTTP collector for tests: stores every body it gets, decodes them with
opentelemetry-proto. ``mode="hang"`` accepts connections and never answers (the slow collector
the issue asks about)."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest


@dataclass
class Received:
    bodies: list[tuple[str, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _of(self, path: str) -> list[bytes]:
        with self.lock:
            return [body for p, body in self.bodies if p == path]

    def spans(self) -> list[Any]:
        found = []
        for body in self._of("/v1/traces"):
            request = ExportTraceServiceRequest.FromString(body)
            for rs in request.resource_spans:
                for ss in rs.scope_spans:
                    found += [(span, rs.resource) for span in ss.spans]
        return found

    def logs(self) -> list[Any]:
        found = []
        for body in self._of("/v1/logs"):
            for rl in ExportLogsServiceRequest.FromString(body).resource_logs:
                for sl in rl.scope_logs:
                    found += list(sl.log_records)
        return found

    def metric_names(self) -> set[str]:
        names = set()
        for body in self._of("/v1/metrics"):
            for rm in ExportMetricsServiceRequest.FromString(body).resource_metrics:
                for sm in rm.scope_metrics:
                    names |= {m.name for m in sm.metrics}
        return names


def attributes(proto: Any) -> dict[str, Any]:
    """A protobuf attribute list as a dict (strings, ints, bools, string arrays)."""
    out: dict[str, Any] = {}
    for kv in proto.attributes:
        kind = kv.value.WhichOneof("value")
        value = getattr(kv.value, kind)
        out[kv.key] = [v.string_value for v in value.values] if kind == "array_value" else value
    return out


def serve(mode: str = "answer") -> Iterator[tuple[str, Received]]:
    received = Received()
    if mode == "hang":
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # accepted by the kernel, never read, never answered
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}", received
        finally:
            listener.close()
        return

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with received.lock:
                received.bodies.append((self.path, body))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
