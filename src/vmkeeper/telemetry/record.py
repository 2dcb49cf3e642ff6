"""The metric families recorded where their values are known: one call per place (health's
gather, the watcher's cycle and alerts, the media queue's job log). Each is a no-op costing one
global read unless telemetry was set up in this process, and imports no OpenTelemetry."""

from __future__ import annotations

from typing import TYPE_CHECKING

from vmkeeper import telemetry

if TYPE_CHECKING:
    from vmkeeper.health.facts import Facts
    from vmkeeper.health.model import HealthReport
    from vmkeeper.media.breaker import BreakerStatus
    from vmkeeper.media.jobs import Job
    from vmkeeper.watch.pressure import Pressure
    from vmkeeper.watch.store import Incident

_BREAKER = {"closed": 0, "half_open": 1, "open": 2}
_FINISHED = ("done", "failed", "rejected")


def health(facts: Facts, report: HealthReport) -> None:
    """Each check's status and time, each HTTP probe's duration by target, each PM2 app."""
    handle = telemetry.active()
    if handle is None:
        return
    families = handle.families
    for check in report.checks:
        families.record_check(check.name, check.layer.value, check.status.exit_code,
                              check.seconds or 0.0)
    for target, got in facts.probes.items():  # targets are the settings' few names
        if got.value is not None:
            families.record_http_probe(target, got.value.seconds, got.value.status)
    snapshot = facts.pm2.value
    for app in (snapshot.apps or []) if snapshot is not None else []:
        cpu = app.cpu_percent / 100 if app.cpu_percent is not None else None
        families.record_pm2_app(app.name, online=app.online, restarts=app.restarts,
                                memory_bytes=app.memory_bytes, cpu=cpu)


def pressure(reading: Pressure) -> None:
    """PSI's "some avg10" as a ratio; the MemAvailable fallback is another quantity, not sent."""
    handle = telemetry.active()
    if handle is not None and reading.source == "psi":
        handle.families.record_memory_pressure(reading.value_pct)


def incident(kind: str, found: Incident, open_now: int) -> None:
    """An alert of the watcher: incidents open now, time to recover, and the incident's record
    as an OTLP log record (redacted) in the current trace."""
    handle = telemetry.active()
    if handle is None:
        return
    recovered = found.seconds_to_recover if kind == "resolved" else None
    handle.families.record_incidents(open_now, recovered)
    handle.log_record("incident", {"message": found.diagnosis, "incident": found.id,
                                   "alert": kind, "state": found.state,
                                   "seconds_to_recover": recovered}, error=kind != "resolved")


def incidents_open(open_now: int) -> None:
    handle = telemetry.active()
    if handle is not None:
        handle.families.record_incidents(open_now)


def media_job(job: Job, queue_depth: int, breaker: BreakerStatus) -> None:
    """A job's change of state (the queue's one job log): when it finished, its duration and
    peak memory (a refused input counted by reason); always the queue depth and the breaker."""
    handle = telemetry.active()
    if handle is None:
        return
    families = handle.families
    state = job.state.value
    if state in _FINISHED and not job.cached:
        peak = job.details.get("peak_memory_bytes")
        families.record_media_job(state, job.seconds or 0.0,
                                  peak if isinstance(peak, int) else None)
        if state == "rejected":
            families.record_rejected(_reason(job.reason))
    families.record_media_state(queue_depth, _BREAKER.get(breaker.state.value, 0))


def _reason(reason: str | None) -> str:
    # The reasons are the code's few words ("too long", "not a video"…); a label keeps them
    # short and in Prometheus' alphabet whatever they become.
    words = "".join(c if c.isalnum() else "_" for c in (reason or "unknown").lower())
    return words.strip("_")[:40] or "unknown"
