"""Where the pages' data comes from: the existing services, behind one injectable bundle.

The fast tier hands :func:`install` fakes; the agent hands it :func:`from_settings`. Nothing
here judges or formats — that is views.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.requests import Request

from vmkeeper import proc
from vmkeeper.agent import audit
from vmkeeper.diagnose.oom_model import OomReport
from vmkeeper.errors import VmkeeperError
from vmkeeper.health.logs import LogsReport
from vmkeeper.health.model import HealthReport
from vmkeeper.health.service import StatusReport
from vmkeeper.releases.results import ReleasesReport
from vmkeeper.settings import Settings
from vmkeeper.watch.store import Incident

# The media service answers on loopback; a dashboard page must not hang on it.
MEDIA_TIMEOUT_S = 2.0
# The incidents page reads the kernel log for OOM kills over this window, at most this often
# (journalctl over a day takes a second or more; the page is read far more often).
OOM_WINDOW = "-24h"
OOM_EVERY_S = 30.0


@dataclass(frozen=True)
class Sources:
    health: Callable[[], HealthReport]
    status: Callable[[], StatusReport]
    releases: Callable[[], ReleasesReport]
    logs: Callable[[str | None], LogsReport]
    history: Callable[[], list[dict[str, Any]]]
    audit: Callable[[], list[dict[str, Any]]]
    subject: Callable[[str], str]  # a sha's commit subject
    env_files: Callable[[str], list[str]]  # the env file names of a release
    media: Callable[[], dict[str, Any]]
    # request, kind, body, who (the session's token name) → the operation id. The agent's
    # enqueue: its runner runs it and writes the audit record under ``who``.
    submit: Callable[[Request, str, dict[str, Any], str], str]
    incidents: Callable[[], list[Incident]] = list  # the watcher's store
    evidence_dir: Callable[[Incident], Path] = lambda _i: Path("/nonexistent")
    # `diagnose oom` over OOM_WINDOW, or why the kernel log could not be read
    oom: Callable[[], OomReport | str] = lambda: "the kernel log is not read here"
    alert_sinks: tuple[str, ...] = ()  # the watcher's configured sinks (webhook, smtp)


def from_settings(settings: Settings) -> Sources:
    from vmkeeper.agent.fresh import Fresh
    from vmkeeper.health import logs, service
    from vmkeeper.releases import history, rollback
    from vmkeeper.watch import service as watch

    def submit(request: Request, kind: str, body: dict[str, Any], who: str) -> str:
        op_id: str = request.app.state.enqueue(request, who, kind, body, None)[0]
        return op_id

    return Sources(
        health=lambda: service.run_health(settings, remember=False),
        status=lambda: service.run_status(settings),
        releases=lambda: rollback.list_releases(settings),
        logs=lambda app: logs.read_logs(settings, app),
        history=lambda: history.read(settings.releases.root),
        audit=lambda: read_audit(settings.state_dir),
        subject=lambda sha: commit_subject(settings, sha),
        env_files=lambda release_id: env_files(settings, release_id),
        media=lambda: media_status(settings),
        submit=submit,
        incidents=lambda: watch.incidents(settings),
        evidence_dir=lambda incident: watch.incident_folder(watch.store_of(settings).folder,
                                                            incident),
        oom=Fresh(lambda: oom_report(settings), max_age_s=OOM_EVERY_S).get,
        alert_sinks=alert_sinks(settings),
    )


def oom_report(settings: Settings) -> OomReport | str:
    """`diagnose oom` over the last day, reading the kernel log with health's check timeout
    (as recover's OOM note does): the page waits seconds at most, never the 300 s a CLI run
    may take. A log that cannot be read is a sentence, kept as long as a report would be."""
    from vmkeeper.diagnose.oom import diagnose_oom

    quick = settings.model_copy(update={"diagnose": settings.diagnose.model_copy(
        update={"read_timeout_s": settings.health.check_timeout_s})})
    try:
        return diagnose_oom(quick, since=OOM_WINDOW)
    except VmkeeperError as error:
        return f"OOM kills not read from the kernel log: {error}"


def alert_sinks(settings: Settings) -> tuple[str, ...]:
    """The sinks watch/alerts.sinks sends to, by the same rule."""
    rules = settings.alerts
    return tuple(name for name, on in (("webhook", bool(rules.webhook_url)),
                                       ("smtp", bool(rules.smtp_host and rules.smtp_to))) if on)


def read_audit(state_dir: Path, limit: int = 200) -> list[dict[str, Any]]:
    try:
        text = (state_dir / audit.AUDIT_FILE).read_text()
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines()[-limit:]:
        try:
            records.append(json.loads(line))
        except ValueError:
            continue  # a torn last line; audit.verify reports it
    return records


def commit_subject(settings: Settings, sha: str) -> str:
    try:
        result = proc.run(["git", "-C", str(settings.workspace.path), "log", "-1",
                           "--format=%s", sha], timeout=5, check=False)
    except VmkeeperError:
        return ""  # no git, or it hung: the pre-flight says the subject is unknown
    return result.stdout.strip() if result.ok else ""


def env_files(settings: Settings, release_id: str) -> list[str]:
    from vmkeeper.releases import store

    app_dir = store.release_dir(settings.releases.root, release_id).joinpath(
        settings.workspace.frontend_dir)
    try:
        return sorted(p.name for p in app_dir.iterdir() if p.name.startswith(".env"))
    except OSError:
        return []


def media_status(settings: Settings) -> dict[str, Any]:
    """The media service's /health (breaker, queue counts, its memory-pressure refusal) and
    recent jobs, or why not; and the host's pressure as the queue's gate reads it."""
    from dataclasses import asdict

    from vmkeeper.watch.pressure import read_pressure

    gate = {**asdict(read_pressure(settings.watch)),
            "psi_warn_pct": settings.watch.memory_pressure_warn_pct,
            "available_warn_pct": settings.watch.memory_available_warn_pct}
    return {**_media_service(settings), "pressure": gate}


def _media_service(settings: Settings) -> dict[str, Any]:
    import httpx

    base = settings.media_url()
    headers = {"Authorization": f"Bearer {settings.media.token}"} if settings.media.token else {}
    try:
        with httpx.Client(timeout=MEDIA_TIMEOUT_S) as client:
            health: dict[str, Any] = client.get(f"{base}/health").json()
            jobs = client.get(f"{base}/jobs", params={"limit": 20}, headers=headers)
            health["jobs"] = jobs.json().get("jobs", []) if jobs.status_code == 200 else []
    except (httpx.HTTPError, ValueError) as error:
        return {"error": f"the media service at {base} does not answer ({error})"}
    return health
