"""Fake sources for the dashboard's fast tier: the services' real result types, made up."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vmkeeper.dashboard.sources import Sources
from vmkeeper.diagnose.oom_model import OomEvent, OomReport, Victim
from vmkeeper.health.logs import LogLine, LogSource, LogsReport
from vmkeeper.health.model import Cause, Check, HealthReport, Layer, Status
from vmkeeper.health.service import AppStatus, StatusReport
from vmkeeper.releases.results import ReleaseRow, ReleasesReport
from vmkeeper.watch.store import Incident

OLD = "20261201T100000Z-aaaaaaaaaaaa"
NEW = "20261201T120000Z-bbbbbbbbbbbb"


def checks(frontend_down: bool = False) -> list[Check]:
    down = Check("pm2:frontend-dev", Status.CRITICAL, "frontend-dev is stopped",
                 layer=Layer.APPS, reason=Cause.STOPPED)
    up = Check("pm2:frontend-dev", Status.OK, "frontend-dev online", layer=Layer.APPS)
    return [
        Check("public", Status.OK, "http://127.0.0.1/ answers 200", layer=Layer.PUBLIC),
        Check("apache", Status.OK, "Apache answers", layer=Layer.APACHE),
        Check("port:3000", Status.OK, "3000 (frontend) listened on", layer=Layer.PORTS),
        down if frontend_down else up,
        Check("supervisor", Status.OK, "PM2 daemon running", layer=Layer.SUPERVISOR),
        Check("dump", Status.OK, "dump lists all 4 apps", layer=Layer.DUMP),
        Check("disk", Status.WARN, "disk 91% used", layer=Layer.HOST),
        Check("memory", Status.OK, "memory 40% used, no pressure", layer=Layer.HOST),
    ]


def health(frontend_down: bool = False) -> HealthReport:
    found = checks(frontend_down)
    return HealthReport(
        Status.CRITICAL if frontend_down else Status.WARN,
        "The frontend is stopped in PM2." if frontend_down else "Every layer answers.",
        "PM2 apps" if frontend_down else None,
        "run `vmkeeper recover`" if frontend_down else None, found, 0.01, "pm2")


def status(restarts: int = 2) -> StatusReport:
    return StatusReport([AppStatus("frontend-dev", "frontend", "online", 10, "/x", restarts,
                                   150 * 1024 * 1024, [3000], NEW)], 1, "pm2", 80,
                        "http://127.0.0.1/", NEW, None)


OOM_VERDICT = ("ffmpeg (pid 4242) killed holding 1.4 GiB RSS of 2.0 GiB RAM. vmkeeper's video "
               "reversal: see the media settings (media.*)")


def oom() -> OomReport:
    event = OomEvent("Dec 01 11:30:00", "2026-12-01T11:30:00+00:00",
                     Victim("ffmpeg", 4242, 1000, 2_000_000, 1_400_000, 1000, 0), "global",
                     None, None, verdict=OOM_VERDICT)
    return OomReport("journalctl", (), (event,), (), 2_000_000, 900, 0, OOM_VERDICT)


def incident(evidence: list[str]) -> Incident:
    """A watcher incident of 11:40 UTC: opened, one failed then one good recovery, resolved."""
    opened = datetime(2026, 12, 1, 11, 40, tzinfo=UTC).timestamp()
    return Incident("1796125200-1", "resolved", opened, "frontend-dev is stopped",
                    opened + 30, [{"at": opened + 10, "ok": False, "diagnosis": "still down",
                                   "steps": [{"command": "pm2 start frontend-dev", "ok": False}]},
                                  {"at": opened + 25, "ok": True, "diagnosis": "up",
                                   "steps": [{"command": "pm2 restart frontend-dev",
                                              "ok": True}]}],
                    evidence, 30.0)


def releases() -> ReleasesReport:
    def row(rid: str, active: bool, has_build: bool = True) -> ReleaseRow:
        return ReleaseRow(rid, rid[-12:] * 3, datetime(2026, 12, 1, 10, tzinfo=UTC),
                          Path("/r") / rid, 80 * 1024 * 1024, "good", active, active, has_build)
    return ReleasesReport(NEW, NEW, [row(NEW, True), row(OLD, False),
                                     row("20261201T090000Z-cccccccccccc", False, False)])


@dataclass
class Fake:
    frontend_down: bool = False
    restarts: int = 2
    gathers: int = 0
    gather_error: str | None = None
    evidence: Path = Path("/nonexistent")
    sinks: tuple[str, ...] = ("webhook",)
    media: dict[str, Any] = field(default_factory=lambda: {
        "status": "ok", "breaker": {"state": "closed"}, "counts": {"queued": 1}, "jobs": []})
    submitted: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)

    def health(self) -> HealthReport:
        self.gathers += 1
        if self.gather_error:
            raise RuntimeError(self.gather_error)
        return health(self.frontend_down)

    def incidents(self) -> list[Incident]:
        files = sorted(str(p) for p in self.evidence.iterdir()) if self.evidence.is_dir() else []
        return [incident(files)]

    def submit(self, _request: object, kind: str, body: dict[str, Any], who: str) -> str:
        self.submitted.append((kind, body, who))
        return f"op{len(self.submitted)}"

    def sources(self) -> Sources:
        logs = LogsReport([LogLine("frontend-dev/out", "ready on 3000 token=[REDACTED]")],
                          [LogSource("frontend-dev/out", "/l/out.log", True, 1),
                           LogSource("apache/error", "/l/error.log", False, 0)])
        return Sources(
            health=self.health, status=lambda: status(self.restarts), releases=releases,
            logs=lambda app: logs,
            history=lambda: [{"time": "2026-12-01T12:00:00Z", "command": "deploy",
                              "phase": "finished", "release": NEW, "result": "ok"}],
            audit=lambda: [{"seq": 1, "at": "2026-12-01T12:05:00Z", "who": "ops",
                            "operation": "op1", "kind": "rollback",
                            "body": {"release": OLD}, "result": "succeeded"}],
            subject=lambda sha: "fix the header",
            env_files=lambda rid: [".env", ".env.production"] if rid == OLD else [".env"],
            media=lambda: self.media,
            submit=self.submit,
            incidents=self.incidents, evidence_dir=lambda _incident: self.evidence,
            oom=oom, alert_sinks=self.sinks,
        )
