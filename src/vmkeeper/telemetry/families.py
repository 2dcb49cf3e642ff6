"""The metric families vmkeeper exports, one ``record_*`` helper each.

Names follow the OpenTelemetry semantic conventions where one exists
(``http.client.request.duration``, ``process.memory.usage``, ``deployment.*``); the rest are
``vmkeeper.*``. Labels are bounded on purpose: check and app names, targets from the settings,
results and states from enums — never a release id, request id or path (the active release is
one ``_info`` series at a time, replaced on each report).

Gauges are observable: the last reported values are kept here and observed at collection, so a
series that is no longer reported (an old release) disappears instead of living forever.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from opentelemetry.metrics import CallbackOptions, Meter, Observation

Attrs = tuple[tuple[str, str | int], ...]

# Seconds: a deploy takes minutes, a probe milliseconds; one bucket set fits both ends.
_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
_BYTES = tuple(float(2**n) for n in range(20, 33))  # 1 MiB … 4 GiB

GAUGES: dict[str, tuple[str, str]] = {
    "vmkeeper.health.check.status": ("1", "One check: 0 ok, 1 warn, 2 critical, 3 unknown."),
    "vmkeeper.pm2.app.up": ("1", "1 when PM2 reports the app online."),
    "vmkeeper.pm2.app.restarts": ("{restart}", "Restarts PM2 counted for the app."),
    "process.memory.usage": ("By", "Resident memory of the app's process."),
    "process.cpu.utilization": ("1", "CPU of the app's process (1 = one core)."),
    "vmkeeper.release.info": ("1", "The active release (vcs.ref.head.revision)."),
    "vmkeeper.incidents.open": ("{incident}", "Incidents open now."),
    "vmkeeper.media.queue.depth": ("{job}", "Media jobs waiting or running."),
    "vmkeeper.media.breaker.state": ("1", "FFmpeg breaker: 0 closed, 1 half-open, 2 open."),
    "vmkeeper.memory.pressure": ("1", "PSI memory 'some' avg10 as a ratio."),
}


class Families:
    def __init__(self, meter: Meter, dropped: Callable[[], Mapping[str, int]]) -> None:
        self._lock = threading.Lock()
        self._gauges: dict[str, dict[Attrs, float]] = {name: {} for name in GAUGES}
        for name, (unit, description) in GAUGES.items():
            meter.create_observable_gauge(name, [self._observer(name)], unit, description)
        self._dropped = dropped
        meter.create_observable_counter(
            "vmkeeper.telemetry.dropped", [self._observe_dropped], "{item}",
            "Spans and log records the collector never got (refused, timed out, overflow).")
        h = meter.create_histogram
        self.check_duration = h("vmkeeper.health.check.duration", "s", "One check's wall time.",
                                explicit_bucket_boundaries_advisory=_SECONDS)
        self.http_duration = h("http.client.request.duration", "s", "One HTTP probe.",
                               explicit_bucket_boundaries_advisory=_SECONDS)
        self.deploy_duration = h("deployment.duration", "s", "A deploy or rollback.",
                                 explicit_bucket_boundaries_advisory=_SECONDS)
        self.failed_requests = meter.create_counter(
            "deployment.failed_requests", "{request}",
            "Requests through the proxy that failed while a deploy switched releases.")
        self.recovery = h("vmkeeper.incident.recovery.duration", "s", "Time to recover.",
                          explicit_bucket_boundaries_advisory=_SECONDS)
        self.job_duration = h("vmkeeper.media.job.duration", "s", "One media job.",
                              explicit_bucket_boundaries_advisory=_SECONDS)
        self.job_memory = h("vmkeeper.media.job.memory.peak", "By", "A job's peak RSS.",
                            explicit_bucket_boundaries_advisory=_BYTES)
        self.rejected = meter.create_counter(
            "vmkeeper.media.rejected", "{input}", "Inputs refused before any decoding.")

    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_options: CallbackOptions) -> Iterable[Observation]:
            with self._lock:
                return [Observation(v, dict(k)) for k, v in self._gauges[name].items()]
        return observe

    def _observe_dropped(self, _options: CallbackOptions) -> Iterable[Observation]:
        return [Observation(count, {"signal": signal}) for signal, count in self._dropped().items()]

    def set_gauge(self, name: str, values: Mapping[Attrs, float], *, replace: bool) -> None:
        """``replace``: these are now all the series of ``name`` (a full report)."""
        with self._lock:
            if replace:
                self._gauges[name] = dict(values)
            else:
                self._gauges[name].update(values)

    def record_check(self, name: str, layer: str, status: int, seconds: float) -> None:
        attrs: Attrs = (("check", name), ("layer", layer))
        self.set_gauge("vmkeeper.health.check.status", {attrs: status}, replace=False)
        self.check_duration.record(seconds, {"check": name})

    def record_http_probe(self, target: str, seconds: float, status_code: int | None) -> None:
        attrs: dict[str, Any] = {"vmkeeper.target": target, "http.request.method": "GET"}
        if status_code is not None:
            attrs["http.response.status_code"] = status_code
        else:
            attrs["error.type"] = "no_response"
        self.http_duration.record(seconds, attrs)

    def record_pm2_app(self, app: str, *, online: bool, restarts: int,
                       memory_bytes: int | None, cpu: float | None) -> None:
        attrs: Attrs = (("app", app),)
        self.set_gauge("vmkeeper.pm2.app.up", {attrs: int(online)}, replace=False)
        self.set_gauge("vmkeeper.pm2.app.restarts", {attrs: restarts}, replace=False)
        if memory_bytes is not None:
            self.set_gauge("process.memory.usage", {attrs: memory_bytes}, replace=False)
        if cpu is not None:
            self.set_gauge("process.cpu.utilization", {attrs: cpu}, replace=False)

    def record_release(self, revision: str | None) -> None:
        key: Attrs = (("vcs.ref.head.revision", revision),) if revision else ()
        series = {key: 1.0} if revision else {}
        self.set_gauge("vmkeeper.release.info", series, replace=True)

    def record_deploy(self, operation: str, ok: bool, seconds: float,
                      failed_requests: int | None) -> None:
        attrs = {"deployment.operation": operation,
                 "deployment.status": "succeeded" if ok else "failed"}
        self.deploy_duration.record(seconds, attrs)
        if failed_requests:
            self.failed_requests.add(failed_requests, {"deployment.operation": operation})

    def record_incidents(self, open_now: int, recovered_after_s: float | None = None) -> None:
        self.set_gauge("vmkeeper.incidents.open", {(): open_now}, replace=True)
        if recovered_after_s is not None:
            self.recovery.record(recovered_after_s)

    def record_media_job(self, result: str, seconds: float, peak_bytes: int | None) -> None:
        self.job_duration.record(seconds, {"vmkeeper.result": result})
        if peak_bytes is not None:
            self.job_memory.record(peak_bytes, {"vmkeeper.result": result})

    def record_media_state(self, queue_depth: int, breaker: int) -> None:
        self.set_gauge("vmkeeper.media.queue.depth", {(): queue_depth}, replace=True)
        self.set_gauge("vmkeeper.media.breaker.state", {(): breaker}, replace=True)

    def record_rejected(self, reason: str) -> None:
        self.rejected.add(1, {"vmkeeper.reason": reason})

    def record_memory_pressure(self, some_avg10_pct: float) -> None:
        self.set_gauge("vmkeeper.memory.pressure", {(): some_avg10_pct / 100}, replace=True)
