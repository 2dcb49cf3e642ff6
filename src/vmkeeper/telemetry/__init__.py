"""Telemetry out (issue 15): OpenTelemetry to the VM's collector, and Prometheus text.

This module is light on purpose: :mod:`vmkeeper.proc` and the CLI import it, and it imports no
OpenTelemetry until :func:`setup` runs (``--help`` and the 150 ms start-up stay untouched). Until
then, and whenever ``telemetry.enabled`` is off, every helper here is a no-op costing one
global read. The SDK side lives in :mod:`vmkeeper.telemetry.sdk`.

The API the long-running processes (agent, watcher) and the one-shot commands call:
``setup(settings, service_name)`` → a :class:`~vmkeeper.telemetry.sdk.Telemetry` handle (its
``record_*`` helpers, ``prometheus_text()``, ``flush(timeout)``); ``span(name, **attrs)``;
``command_span(argv)`` (proc's hook); ``child_env()`` (``TRACEPARENT`` for a child process).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vmkeeper.progress import Progress
    from vmkeeper.settings import Settings
    from vmkeeper.telemetry.sdk import CommandNote, Telemetry

_active: Telemetry | None = None

# How long a one-shot command may spend on telemetry in all (setting up, flushing) before it
# exits; the exit and the spans' own cost take a little more, kept out of the flush's share.
FLUSH_TIMEOUT_S = 2.0
_EXIT_MARGIN_S = 0.5


def setup(settings: Settings, service_name: str) -> Telemetry | None:
    """Start exporting for this process (once); None when ``telemetry.enabled`` is off."""
    global _active
    if not settings.telemetry.enabled:
        return None
    if _active is None:
        from vmkeeper.telemetry.sdk import Telemetry

        _active = Telemetry.start(settings, service_name)
    return _active


def start(settings: Settings, service_name: str) -> Telemetry | None:
    """:func:`setup` for a long-running process (agent, watcher, media service) or a one-shot
    command: a broken SDK or a bad endpoint logs one warning and leaves telemetry off, never
    stopping the process."""
    try:
        return setup(settings, service_name)
    except Exception as error:  # noqa: BLE001 - telemetry is never in the way of an operation
        from vmkeeper import logs

        logs.get_logger("vmkeeper.telemetry").warning("telemetry off", error=str(error))
        return None


def export_soon() -> None:
    """Export the metrics now, in the background (the watcher's cycle): never waits."""
    handle = _active
    if handle is not None:
        handle.export_metrics_soon()


def prometheus_text(skip: frozenset[str] = frozenset()) -> str:
    """The families as Prometheus text, without the families named in ``skip`` (a textfile
    that already has them from elsewhere); empty when telemetry is off."""
    handle = _active
    return handle.prometheus_text(skip) if handle is not None else ""


def join_parent(service_name: str) -> Telemetry | None:
    """A child process whose parent traced it (``TRACEPARENT`` and the endpoint in its
    environment, see :func:`child_env`) exports its own spans into the parent's trace; a child
    started without them imports no OpenTelemetry at all."""
    global _active
    import os

    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if _active is None and endpoint and os.environ.get("TRACEPARENT"):
        from vmkeeper.telemetry.sdk import Config, Telemetry

        _active = Telemetry(Config(endpoint), service_name)
    return _active


def active() -> Telemetry | None:
    return _active


def shutdown(timeout: float = FLUSH_TIMEOUT_S) -> None:
    """Flush for at most ``timeout`` seconds and forget the handle (a one-shot command's end)."""
    global _active
    handle, _active = _active, None
    if handle is not None:
        handle.flush(timeout)


@contextlib.contextmanager
def span(name: str, **attributes: Any) -> Iterator[Any]:
    """A span around the block (a child of the current one), or nothing when inactive."""
    handle = _active
    if handle is None:
        yield None
        return
    with handle.span(name, **attributes) as current:
        yield current


@contextlib.contextmanager
def command_span(argv: list[str]) -> Iterator[CommandNote | None]:
    """proc's one hook: a span per external command (masked argv, exit code, seconds)."""
    handle = _active
    if handle is None:
        yield None
        return
    with handle.command_span(argv) as note:
        yield note


def child_env() -> Mapping[str, str]:
    """``TRACEPARENT`` (W3C) for a child process, so its spans join the current trace."""
    handle = _active
    return handle.traceparent_env() if handle is not None else {}


@contextlib.contextmanager
def continued(carried: Mapping[str, str]) -> Iterator[None]:
    """Make the trace context :func:`child_env` gave (``TRACEPARENT``) current for the block:
    work handed to another thread (a queued job) continues the trace that queued it."""
    handle = _active
    if handle is None or not carried.get("TRACEPARENT"):
        yield
        return
    with handle.continued(carried["TRACEPARENT"]):
        yield


@contextlib.contextmanager
def operation(settings: Settings, name: str, **attributes: Any) -> Iterator[Telemetry | None]:
    """A one-shot command's telemetry: set up, one span for the operation, and a flush of at
    most :data:`FLUSH_TIMEOUT_S` at the end. A telemetry failure never fails the command."""
    import time

    started = time.monotonic()
    handle = start(settings, "vmkeeper")
    if handle is None:
        yield None
        return
    try:
        with handle.span(f"vmkeeper {name}", **{"vmkeeper.operation": name, **attributes}):
            try:
                yield handle
            except Exception as error:  # the one sentence it failed with: its record, too
                handle.log_record(name, {"message": str(error)}, error=True)
                raise
    finally:
        # Setting up (importing the SDK) and redacting records came out of the same 2 s.
        spent = time.monotonic() - started - _operation_seconds(handle) + handle.cost_s
        shutdown(max(FLUSH_TIMEOUT_S - spent - _EXIT_MARGIN_S, 0.1))


def _operation_seconds(handle: Telemetry) -> float:
    return handle.seconds_since_start()


def steps(progress: Progress) -> Progress:
    """``progress`` that also opens a child span per pipeline step (STARTED → DONE/FAILED)."""
    handle = _active
    if handle is None:
        return progress
    return handle.step_spans(progress)
