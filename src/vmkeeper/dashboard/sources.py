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
from vmkeeper.errors import VmkeeperError
from vmkeeper.health.logs import LogsReport
from vmkeeper.health.model import HealthReport
from vmkeeper.health.service import StatusReport
from vmkeeper.releases.results import ReleasesReport
from vmkeeper.settings import Settings

# The media service answers on loopback; a dashboard page must not hang on it.
MEDIA_TIMEOUT_S = 2.0


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


def from_settings(settings: Settings) -> Sources:
    from vmkeeper.health import logs, service
    from vmkeeper.releases import history, rollback

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
    )


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
    """The media service's /health (breaker, queue counts) and recent jobs, or why not."""
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
