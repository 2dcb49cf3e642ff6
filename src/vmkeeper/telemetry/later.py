"""A one-shot command's telemetry, exported after the command has answered.

`vmkeeper health` is run every minute by monitoring and answers in ~0.3 s; importing the
OpenTelemetry SDK and flushing to the collector in the same process added 0.2 s with the
collector answering and up to the 2 s budget with it down. So health measures without the SDK,
prints, exits — and hands what it measured (its span's times, the families' figures: plain
JSON on a pipe) to a detached child, ``python -m vmkeeper.telemetry.later``, in its own session
with no terminal, which exports within the same 2 s budget and exits. A collector that is down
costs the operator nothing; the child's drops are its own.
"""

from __future__ import annotations

import json
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vmkeeper.settings import Settings


def export_later(settings: Settings, operation: str, started_ns: int, *, ok: bool,
                 figures: dict[str, Any], attributes: dict[str, Any] | None = None) -> None:
    """Hand a finished operation's span and figures to a detached exporter; nothing when
    telemetry is off. Never raises: telemetry is never in the way of the command."""
    if not settings.telemetry.enabled:
        return
    t = settings.telemetry
    payload = {
        "config": {"endpoint": t.otlp_endpoint, "environment": t.environment,
                   "export_timeout_s": t.export_timeout_s,
                   "metric_interval_s": t.metric_interval_s},
        "operation": operation, "started_ns": started_ns, "ended_ns": time.time_ns(),
        "ok": ok, "attributes": attributes or {}, "figures": figures,
    }
    from vmkeeper import logs, proc

    try:
        proc.detach([sys.executable, "-m", "vmkeeper.telemetry.later"],
                    input=json.dumps(payload).encode())
    except Exception as error:  # noqa: BLE001 - telemetry is never in the way of the command
        logs.get_logger("vmkeeper.telemetry").warning("telemetry not handed over",
                                                      error=str(error))


def export(payload: dict[str, Any]) -> bool:
    """Export one handed-over operation: its span (with the command's own times) and its
    figures; flush within the one-shot budget. True when everything went out."""
    from opentelemetry.trace import Status, StatusCode

    from vmkeeper import telemetry
    from vmkeeper.telemetry import record
    from vmkeeper.telemetry.sdk import Config, Telemetry

    handle = Telemetry(Config(**payload["config"]), "vmkeeper")
    telemetry.adopt(handle)
    operation = str(payload["operation"])
    span = handle.tracer.start_span(
        f"vmkeeper {operation}", start_time=int(payload["started_ns"]),
        attributes={"vmkeeper.operation": operation, **payload["attributes"]})
    if not payload["ok"]:
        span.set_status(Status(StatusCode.ERROR))
    span.end(end_time=int(payload["ended_ns"]))
    handle.spans_tally.add("queued", 1)
    if operation == "health":
        record.record_health_figures(payload["figures"])
    return handle.flush(telemetry.FLUSH_TIMEOUT_S)


def main() -> None:
    from vmkeeper.jsonable import parse_json

    try:
        payload = parse_json(sys.stdin.buffer.read(), "the handed-over telemetry")
        sys.exit(0 if export(payload) else 1)
    except Exception:  # noqa: BLE001 - no terminal to tell; the command has long answered
        sys.exit(2)


if __name__ == "__main__":
    main()
