"""fl-telemetry for the sandbox: an OTLP/HTTP receiver that decodes and stores what it gets.

The standard VM's telemetry daemon is an OpenTelemetry Collector. The Collector is a Go binary
that none of the registries this project may use ships (PyPI, npm, Debian: checked), so the
sandbox runs this in its place, under PM2 as ``fl-telemetry``: ``POST /v1/traces``,
``/v1/metrics``, ``/v1/logs`` with OTLP protobuf (or OTLP JSON), gzip or not, decoded with the
official generated classes of ``opentelemetry-proto`` — a body that does not decode is a 400
naming the problem, as the Collector answers. Each accepted request is one line of OTLP JSON in
``<store>/<signal>.jsonl`` (the Collector's file exporter's shape), so tests and people read
what really arrived: names, attributes, resources, trace and span ids. ``GET /`` answers the
counts. The gRPC port (4317) accepts and closes connections: nothing of vmkeeper speaks gRPC.

``python -m vmkeeper.telemetry.receiver --http-port P [--grpc-port G] [--store DIR]``; the
environment's ``OTLP_HTTP_PORT``, ``OTLP_GRPC_PORT``, ``OTLP_STORE``, ``HOST`` are the defaults.
Tests run it in-process (:func:`start`) with the store in memory.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import signal
import socket
import sys
import threading
import time
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest,
    ExportLogsServiceResponse,
)
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

MAX_BODY_BYTES = 16 * 2**20  # the Collector's own default limit for one request
MAX_STORE_BYTES = 64 * 2**20  # per signal; beyond, the file is rotated to .1 (one kept)
READ_TIMEOUT_S = 10.0  # a client that stops sending mid-request loses its connection

SIGNALS: dict[str, tuple[str, type[Message], type[Message]]] = {
    "/v1/traces": ("traces", ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/metrics": ("metrics", ExportMetricsServiceRequest, ExportMetricsServiceResponse),
    "/v1/logs": ("logs", ExportLogsServiceRequest, ExportLogsServiceResponse),
}
_REQUEST = {name: request for name, request, _ in SIGNALS.values()}


class Refused(Exception):
    """A request the receiver will not store: (status, one sentence)."""

    def __init__(self, status: int, sentence: str) -> None:
        super().__init__(sentence)
        self.status = status


@dataclass
class Store:
    """Decoded export requests, per signal: in memory (``directory`` None) or OTLP JSON lines."""

    directory: Path | None = None
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_REQUEST, 0))
    stats: dict[str, int] = field(default_factory=lambda: {"bytes": 0, "grpc_connections": 0})
    _memory: dict[str, list[Message]] = field(default_factory=lambda: {s: [] for s in _REQUEST})
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, signal_name: str, request: Message, size: int = 0) -> None:
        with self._lock:
            self.counts[signal_name] += 1
            self.stats["bytes"] += size
            if self.directory is None:
                self._memory[signal_name].append(request)
                return
            path = self.directory / f"{signal_name}.jsonl"
            if path.exists() and path.stat().st_size > MAX_STORE_BYTES:
                path.replace(path.with_suffix(".jsonl.1"))
            line = json.dumps(json_format.MessageToDict(request), separators=(",", ":"))
            with open(path, "a", encoding="utf-8") as out:
                out.write(line + "\n")

    def requests(self, signal_name: str) -> list[Any]:
        if self.directory is None:
            with self._lock:
                return list(self._memory[signal_name])
        path = self.directory / f"{signal_name}.jsonl"
        if not path.exists():
            return []
        kind = _REQUEST[signal_name]
        return [json_format.ParseDict(json.loads(line), kind())
                for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def spans(self) -> list[tuple[Any, Any]]:
        """Every span received, with the resource it came with."""
        return [(span, rs.resource) for request in self.requests("traces")
                for rs in request.resource_spans for ss in rs.scope_spans for span in ss.spans]

    def logs(self) -> list[Any]:
        return [record for request in self.requests("logs")
                for rl in request.resource_logs for sl in rl.scope_logs
                for record in sl.log_records]

    def metrics(self) -> list[tuple[Any, Any]]:
        """Every metric of every export, with its resource (a gauge arrives once per export)."""
        return [(metric, rm.resource) for request in self.requests("metrics")
                for rm in request.resource_metrics for sm in rm.scope_metrics
                for metric in sm.metrics]

    def metric_names(self) -> set[str]:
        return {metric.name for metric, _ in self.metrics()}


def attributes(proto: Any) -> dict[str, Any]:
    """A protobuf attribute list as a dict (strings, numbers, bools, arrays of them)."""
    return {kv.key: _value(kv.value) for kv in proto.attributes}


def _value(any_value: Any) -> Any:
    kind = any_value.WhichOneof("value")
    if kind is None:
        return None
    value = getattr(any_value, kind)
    if kind == "array_value":
        return [_value(item) for item in value.values]
    return value


def decode(path: str, headers: Any, body: bytes) -> tuple[str, Message]:
    """The signal and the decoded request of one POST, or :class:`Refused`."""
    if path.split("?", 1)[0] not in SIGNALS:
        raise Refused(404, f"No OTLP endpoint at {path}: use /v1/traces, /v1/metrics or /v1/logs.")
    signal_name, request_type, _ = SIGNALS[path.split("?", 1)[0]]
    encoding = (headers.get("Content-Encoding") or "").strip().lower()
    if encoding == "gzip":
        body = _gunzip(body)
    elif encoding not in ("", "identity"):
        raise Refused(415, f"Content-Encoding {encoding!r} is not supported: send gzip or none.")
    content_type = (headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    request = request_type()
    try:
        if content_type == "application/x-protobuf":
            request.ParseFromString(body)
        elif content_type == "application/json":
            json_format.Parse(body.decode("utf-8"), request)
        else:
            raise Refused(415, f"Content-Type {content_type or 'none'!r} is not OTLP: send "
                               "application/x-protobuf or application/json.")
    except (DecodeError, json_format.ParseError, UnicodeDecodeError) as error:
        raise Refused(400, f"The body is not an OTLP {signal_name} export request "
                           f"({type(error).__name__}).") from None
    return signal_name, request


def _gunzip(body: bytes) -> bytes:
    # Bounded: a small gzip bomb must not become gigabytes here.
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, MAX_BODY_BYTES + 1)
    except zlib.error:
        raise Refused(400, "The body is not valid gzip.") from None
    if len(out) > MAX_BODY_BYTES or inflater.unconsumed_tail:
        raise Refused(413, f"The body inflates past {MAX_BODY_BYTES} bytes: send smaller batches.")
    return out


def _handler(store: Store, started_at: str) -> type[Any]:
    class Handler(http.server.BaseHTTPRequestHandler):
        timeout = READ_TIMEOUT_S
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            try:
                length = int(self.headers.get("Content-Length") or -1)
                if length < 0:
                    raise Refused(411, "Send a Content-Length with the OTLP body.")
                if length > MAX_BODY_BYTES:
                    raise Refused(413, f"The body is over {MAX_BODY_BYTES} bytes: send smaller "
                                       "batches.")
                body = self.rfile.read(length)
                signal_name, request = decode(self.path, self.headers, body)
            except Refused as refused:
                self.close_connection = True
                self._answer(refused.status, "application/json",
                             json.dumps({"error": str(refused)}).encode())
                return
            except ValueError:
                self.close_connection = True
                self._answer(400, "application/json",
                             b'{"error": "The Content-Length is not a number."}')
                return
            store.add(signal_name, request, len(body))
            response = SIGNALS[self.path.split("?", 1)[0]][2]()
            if self.headers.get("Content-Type", "").startswith("application/json"):
                self._answer(200, "application/json", b"{}")
            else:
                self._answer(200, "application/x-protobuf", response.SerializeToString())

        def do_GET(self) -> None:
            if self.path != "/":
                self._answer(404, "application/json", b'{"error": "not found"}')
                return
            data = {"service": "fl-telemetry", "pid": os.getpid(), "started_at": started_at,
                    "counts": {**store.counts, **store.stats}}
            self._answer(200, "application/json", json.dumps(data).encode())

        def _answer(self, status: int, content_type: str, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per export would drown PM2's log; GET / has the counts

    return Handler


class _Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # An exporter that gave up (a one-shot command's 2 s flush ended) hangs up before the
        # answer, and a client that stalls is cut at READ_TIMEOUT_S: routine, not a traceback.
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return
        super().handle_error(request, client_address)


@dataclass
class Receiver:
    """A running receiver: its HTTP server (and gRPC placeholder), in background threads."""

    http: _Server
    store: Store
    grpc: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    @property
    def url(self) -> str:
        host, port = self.http.server_address[:2]
        return f"http://{host!s}:{port}"

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()
        if self.grpc is not None:
            self.grpc.close()


def start(store: Store | None = None, *, host: str = "127.0.0.1", http_port: int = 0,
          grpc_port: int | None = None) -> Receiver:
    store = store if store is not None else Store()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    server = _Server((host, http_port), _handler(store, started_at))
    receiver = Receiver(server, store)
    threads = [threading.Thread(target=server.serve_forever, args=(0.05,), name="otlp-http",
                               daemon=True)]
    if grpc_port is not None:
        receiver.grpc = socket.create_server((host, grpc_port))
        threads.append(threading.Thread(target=_accept_and_close, name="otlp-grpc",
                                        args=(receiver.grpc, store.stats), daemon=True))
    for thread in threads:
        thread.start()
    receiver._threads = threads
    return receiver


def _accept_and_close(listener: socket.socket, stats: dict[str, int]) -> None:
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:  # closed: the receiver stops
            return
        stats["grpc_connections"] += 1
        connection.close()


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip().isdigit() else default


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vmkeeper.telemetry.receiver",
                                     description="OTLP/HTTP receiver that stores what it gets.")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--http-port", type=int, default=_int_env("OTLP_HTTP_PORT", 4318))
    parser.add_argument("--grpc-port", type=int, default=_int_env("OTLP_GRPC_PORT", 4317))
    parser.add_argument("--store", type=Path, default=Path(os.environ.get("OTLP_STORE", ".")))
    args = parser.parse_args(argv)
    try:
        args.store.mkdir(parents=True, exist_ok=True)
        receiver = start(Store(args.store), host=args.host, http_port=args.http_port,
                         grpc_port=args.grpc_port)
    except OSError as error:
        print(f"fl-telemetry: cannot listen on {args.host} ports {args.http_port}/"
              f"{args.grpc_port} or write {args.store}: {error.strerror or error}; free the port "
              "or choose another.", file=sys.stderr)
        return 1
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    print(f"fl-telemetry: otlp/http on {receiver.url}, storing in {args.store}", flush=True)
    stopping.wait()
    receiver.stop()
    print("fl-telemetry: stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
