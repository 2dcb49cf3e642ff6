"""The OpenTelemetry side: providers, exporters with a bounded queue, spans, log records.

Imported only by :func:`vmkeeper.telemetry.setup`. Nothing here may slow an operation down:
spans, metrics and log records go to bounded in-memory queues that background threads export
over OTLP/HTTP with a short timeout; :meth:`Telemetry.flush` waits at most its timeout and then
abandons what is left (daemon threads die with the process), counting it as dropped.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextvars import Token
from dataclasses import dataclass, field
from importlib import metadata
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry._logs import SeverityNumber
from opentelemetry.context import Context
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor, LogRecordExportResult
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from vmkeeper.telemetry.families import Families

if TYPE_CHECKING:
    from opentelemetry.sdk._logs import ReadableLogRecord
    from opentelemetry.sdk.trace import ReadableSpan

    from vmkeeper.progress import Progress, ProgressEvent
    from vmkeeper.settings import Settings

_QUEUE = 2048  # items per signal held while the collector is away; beyond that, dropped
_PROPAGATOR = TraceContextTextMapPropagator()


@dataclass
class Tally:
    """What one signal queued, delivered and lost (export failures, overflow, abandoned)."""

    queued: int = 0
    delivered: int = 0
    failed: int = 0
    abandoned: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, attribute: str, count: int) -> None:
        with self.lock:
            setattr(self, attribute, getattr(self, attribute) + count)

    @property
    def dropped(self) -> int:
        return self.failed + self.abandoned


class _CountingSpans(OTLPSpanExporter):
    tally: Tally

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        self.tally.add("delivered" if result is SpanExportResult.SUCCESS else "failed", len(spans))
        return result


class _CountingLogs(OTLPLogExporter):
    tally: Tally

    def export(self, batch: Sequence[ReadableLogRecord]) -> LogRecordExportResult:
        result = super().export(batch)
        ok = result is LogRecordExportResult.SUCCESS
        self.tally.add("delivered" if ok else "failed", len(batch))
        return result


@dataclass
class CommandNote:
    """What proc tells the span of one external command once it has finished."""

    span: Any

    def finished(self, exit_code: int, seconds: float) -> None:
        self.span.set_attribute("process.exit.code", exit_code)
        self.span.set_attribute("vmkeeper.command.seconds", round(seconds, 3))
        if exit_code != 0:
            self.span.set_status(trace.StatusCode.ERROR, f"exit code {exit_code}")


@dataclass(frozen=True)
class Config:
    """What the exporters need: from the settings, or (a media worker, which does not load
    them) from the environment its parent gave it."""

    endpoint: str
    environment: str = "production"
    export_timeout_s: float = 1.0
    metric_interval_s: float = 30.0

    @classmethod
    def of(cls, settings: Settings) -> Config:
        t = settings.telemetry
        return cls(t.otlp_endpoint, t.environment, t.export_timeout_s, t.metric_interval_s)


def _resource(config: Config, service_name: str) -> Resource:
    try:
        version = metadata.version("vmkeeper")
    except metadata.PackageNotFoundError:
        version = "0"
    return Resource.create({
        "service.name": service_name,
        "service.version": version,
        "service.instance.id": str(uuid.uuid4()),
        "host.name": socket.gethostname(),
        "deployment.environment.name": config.environment,
    })


class Telemetry:
    """One process's telemetry: a tracer, meters (``families``), a logger, and the tallies."""

    def __init__(self, cfg: Config, service_name: str) -> None:
        self._ready_at = 0.0
        # Time this handle spent on the caller's thread (redacting log records): a one-shot
        # command's flush gets what is left of the 2 s after it.
        self.cost_s = 0.0
        base = cfg.endpoint.rstrip("/")
        timeout = cfg.export_timeout_s
        self.endpoint = base
        self.resource = _resource(cfg, service_name)
        _quiet_sdk_logging()
        self.spans_tally, self.logs_tally = Tally(), Tally()
        span_exporter = _CountingSpans(endpoint=f"{base}/v1/traces", timeout=timeout)
        span_exporter.tally = self.spans_tally
        self._tracers = TracerProvider(resource=self.resource, shutdown_on_exit=False)
        self._tracers.add_span_processor(BatchSpanProcessor(
            span_exporter, max_queue_size=_QUEUE, export_timeout_millis=int(timeout * 1000)))
        self.tracer = self._tracers.get_tracer("vmkeeper")
        log_exporter = _CountingLogs(endpoint=f"{base}/v1/logs", timeout=timeout)
        log_exporter.tally = self.logs_tally
        self._loggers = LoggerProvider(resource=self.resource, shutdown_on_exit=False)
        self._loggers.add_log_record_processor(BatchLogRecordProcessor(
            log_exporter, max_queue_size=_QUEUE, export_timeout_millis=int(timeout * 1000)))
        self.logger = self._loggers.get_logger("vmkeeper")
        # Two readers on one set of instruments: OTLP in the background, and the in-memory one
        # the Prometheus text (`GET /metrics`, the watcher's textfile) is rendered from.
        self.metric_reader = InMemoryMetricReader()
        self._timeout_s = timeout
        self._exporting = threading.Lock()
        self._periodic = periodic = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{base}/v1/metrics", timeout=timeout),
            export_interval_millis=int(cfg.metric_interval_s * 1000),
            export_timeout_millis=int(timeout * 1000))
        self._meters = MeterProvider(resource=self.resource, shutdown_on_exit=False,
                                     metric_readers=[periodic, self.metric_reader])
        self.families = Families(self._meters.get_meter("vmkeeper"), self.dropped)
        self._detached = _join_parent_from_environment()
        self._ready_at = time.monotonic()

    def tee_spans(self, exporter: SpanExporter) -> None:
        """Also hand each finished span to ``exporter``, synchronously (tests' in-memory one)."""
        self._tracers.add_span_processor(SimpleSpanProcessor(exporter))

    def seconds_since_start(self) -> float:
        """Since this handle was ready (what an operation took, its set-up excluded)."""
        return time.monotonic() - self._ready_at

    @classmethod
    def start(cls, settings: Settings, service_name: str) -> Telemetry:
        return cls(Config.of(settings), service_name)

    def dropped(self) -> dict[str, int]:
        return {"traces": self.spans_tally.dropped, "logs": self.logs_tally.dropped}

    @contextlib.contextmanager
    def span(self, name: str, **attributes: Any) -> Iterator[Any]:
        with self.tracer.start_as_current_span(name, attributes=_clean(attributes)) as current:
            self.spans_tally.add("queued", 1)
            yield current

    @contextlib.contextmanager
    def server_span(self, method: str, headers: Mapping[str, str]) -> Iterator[Any]:
        """A request's span: the caller's trace when it sent ``traceparent``, else a new one."""
        parent = _PROPAGATOR.extract({k.lower(): v for k, v in headers.items()})
        with self.tracer.start_as_current_span(
                method, context=parent, kind=trace.SpanKind.SERVER,
                attributes={"http.request.method": method}) as current:
            self.spans_tally.add("queued", 1)
            yield current

    @contextlib.contextmanager
    def command_span(self, argv: list[str]) -> Iterator[CommandNote]:
        from vmkeeper.proc import mask_arg

        program = os.path.basename(argv[0]) if argv else "?"
        attributes = {"process.executable.name": program,
                      "process.command_args": [mask_arg(a) for a in argv]}
        with self.span(f"exec {program}", **attributes) as current:
            yield CommandNote(current)

    def step_spans(self, progress: Progress) -> Progress:
        from vmkeeper.progress import Phase

        # The step's span is made current while it runs, so its commands are its children.
        open_steps: dict[str, tuple[Any, Token[Context]]] = {}

        def show(event: ProgressEvent) -> None:
            if event.step is not None and event.phase is Phase.STARTED:
                step_span = self.tracer.start_span(
                    f"step {event.step}", attributes={"vmkeeper.step": event.step})
                self.spans_tally.add("queued", 1)
                token = otel_context.attach(trace.set_span_in_context(step_span))
                open_steps[event.step] = (step_span, token)
            elif event.step in open_steps and event.phase in (Phase.DONE, Phase.FAILED):
                step_span, token = open_steps.pop(event.step)
                if event.phase is Phase.FAILED:
                    step_span.set_status(trace.StatusCode.ERROR, event.message or "failed")
                step_span.end()
                otel_context.detach(token)
            progress(event)

        return show

    @contextlib.contextmanager
    def continued(self, traceparent: str) -> Iterator[None]:
        token = otel_context.attach(_PROPAGATOR.extract({"traceparent": traceparent}))
        try:
            yield
        finally:
            otel_context.detach(token)

    def traceparent_env(self) -> Mapping[str, str]:
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        if "traceparent" not in carrier:
            return {}
        # OTEL_EXPORTER_OTLP_ENDPOINT: the SDK's own variable, so a child that does not load
        # vmkeeper's settings (the media worker) still knows where to send its spans.
        return {"TRACEPARENT": carrier["traceparent"], "OTEL_EXPORTER_OTLP_ENDPOINT": self.endpoint}

    def log_record(self, kind: str, record: Mapping[str, Any], *, error: bool = False) -> None:
        """An operation or incident record as an OTLP log record: redacted, in the current
        trace (the SDK takes trace and span ids from the current context)."""
        started = time.monotonic()
        from vmkeeper.redact import redact_text

        flat = {f"vmkeeper.{key}": redact_text(str(value)) if isinstance(value, str) else value
                for key, value in record.items() if _scalar(value)}
        self.logger.emit(
            body=redact_text(str(record.get("message") or kind)), event_name=f"vmkeeper.{kind}",
            severity_number=SeverityNumber.ERROR if error else SeverityNumber.INFO,
            attributes=flat)
        self.logs_tally.add("queued", 1)
        self.cost_s += time.monotonic() - started

    def record_operation(self, operation: str, ok: bool, seconds: float,
                         failed_requests: int | None, *, revision: str | None,
                         record: Mapping[str, Any]) -> None:
        """A deploy's or rollback's metrics, its log record, and its outcome on the span."""
        self.families.record_deploy(operation, ok, seconds, failed_requests)
        if revision:
            self.families.record_release(revision)
        trace.get_current_span().set_attribute(
            "deployment.status", "succeeded" if ok else "failed")
        self.log_record(operation, record, error=not ok)

    def record_result(self, kind: str, result: Any) -> None:
        """A deploy's, rollback's or recover's result, as the CLI and the agent's worker have
        it: the metrics and log record of :meth:`record_operation`, or recover's record."""
        import dataclasses

        if kind == "recover":
            self.log_record("recover", {"message": result.diagnosis}, error=not result.ok)
            return
        if getattr(result, "dry_run", False):
            return
        revision = getattr(result, "sha", None) if kind == "deploy" and result.ok else None
        self.record_operation(kind, result.ok, result.seconds, result.failed_requests,
                              revision=revision, record=dataclasses.asdict(result))

    def prometheus_text(self, skip: frozenset[str] = frozenset()) -> str:
        from vmkeeper.telemetry.prom import render

        return render(self.metric_reader.get_metrics_data(), self.resource, skip)

    def export_metrics_soon(self) -> None:
        """Collect and export the metrics on a background thread; one at a time (a collector
        that hangs holds one thread for the export timeout, and the next cycles skip)."""
        if not self._exporting.acquire(blocking=False):
            return

        def push() -> None:
            try:
                with contextlib.suppress(Exception):  # a refused export is counted, not shown
                    self._periodic.force_flush(int(self._timeout_s * 1000))
            finally:
                self._exporting.release()

        threading.Thread(target=push, name="vmkeeper-telemetry-metrics", daemon=True).start()

    def flush(self, timeout: float) -> bool:
        """Hand everything queued to the collector within ``timeout`` s; what is not delivered
        by then is abandoned (and counted). True when everything went out."""
        deadline = time.monotonic() + timeout
        done = threading.Event()

        def push() -> None:
            each = max(int(timeout * 1000), 1)
            # A refused export raises from the metric reader; it is counted, never shown.
            with contextlib.suppress(Exception):
                self._tracers.force_flush(each)
                self._loggers.force_flush(each)
                self._meters.force_flush(each)
            done.set()

        threading.Thread(target=push, name="vmkeeper-telemetry-flush", daemon=True).start()
        done.wait(max(deadline - time.monotonic(), 0))
        for tally in (self.spans_tally, self.logs_tally):
            with tally.lock:
                tally.abandoned = max(tally.queued - tally.delivered - tally.failed, 0)
        if self._detached is not None:
            otel_context.detach(self._detached)
            self._detached = None
        return done.is_set()


def _quiet_sdk_logging() -> None:
    """The SDK logs each failed export; a collector that is down must not write on the
    operator's terminal at every command. The losses are counted (vmkeeper_telemetry_dropped)."""
    sdk_log = logging.getLogger("opentelemetry")
    if not sdk_log.handlers:
        sdk_log.addHandler(logging.NullHandler())
    sdk_log.propagate = False


def _join_parent_from_environment() -> Token[Context] | None:
    """A child started with ``TRACEPARENT`` (the media worker) continues its parent's trace."""
    traceparent = os.environ.get("TRACEPARENT")
    if not traceparent:
        return None
    return otel_context.attach(_PROPAGATOR.extract({"traceparent": traceparent}))


def _scalar(value: object) -> bool:
    return isinstance(value, str | bool | int | float)


def _clean(attributes: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in attributes.items()
            if value is not None and (_scalar(value) or isinstance(value, list))}
