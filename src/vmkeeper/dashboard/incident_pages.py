"""The incidents pages: the timeline on one axis, one incident with its evidence files, and a
health change with the report that showed it.

Evidence files are the watcher's own (watch/evidence.py writes them when an incident opens:
health.json, oom.txt, pm2-logs.txt, bundle.tar.gz). Only a file the incident lists, by its
name, from inside that incident's folder, is served; text passes through the project's
redactor once more on its way out (health.json was written as gathered), the bundle is already
redacted and is a download.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, PlainTextResponse
from starlette.concurrency import run_in_threadpool

from vmkeeper.dashboard.session import Session
from vmkeeper.dashboard.timeline import timeline
from vmkeeper.diagnose.oom_model import OomReport
from vmkeeper.health.logs import redactor
from vmkeeper.jsonable import json_text
from vmkeeper.watch.store import Incident

if TYPE_CHECKING:
    from vmkeeper.dashboard.routes import Dashboard

MAX_TEXT_BYTES = 1024 * 1024  # a text evidence file shown whole up to this, then its head


def evidence_file(folder: Path, incident: Incident, name: str) -> Path | None:
    """The evidence file ``name`` of ``incident`` if it lists it and it lies in its folder."""
    listed = {Path(p).name: Path(p) for p in incident.evidence}
    path = listed.get(name)
    if path is None:
        return None
    try:
        resolved = path.resolve(strict=True)
        inside = resolved.parent == folder.resolve(strict=True)
    except OSError:
        return None
    return resolved if inside and resolved.is_file() else None


def _redacted_text(path: Path) -> str:
    with path.open("rb") as handle:
        data = handle.read(MAX_TEXT_BYTES + 1)
    text = data[:MAX_TEXT_BYTES].decode("utf-8", "replace")
    cut = f"\n[… cut at {MAX_TEXT_BYTES} bytes]\n" if len(data) > MAX_TEXT_BYTES else ""
    return redactor()(text) + cut


def install(app: FastAPI, board: Dashboard,
            signed_in: Callable[[Dashboard, Request], Session]) -> None:
    def find(incident_id: str) -> Incident:
        found = next((i for i in board.sources.incidents() if i.id == incident_id), None)
        if found is None:
            raise HTTPException(404, f"No incident is named {incident_id}.")
        return found

    @app.get("/incidents", response_class=HTMLResponse)
    def incidents(request: Request) -> HTMLResponse:
        session = signed_in(board, request)
        oom = board.sources.oom()
        report = oom if isinstance(oom, OomReport) else None
        events = timeline(board.sources.history(), board.sources.audit(),
                          board.sources.incidents(), report, board.changes.recent(),
                          board.sources.alert_sinks)
        return board.page("incidents.html", session, events=events, oom=report,
                          oom_note=None if report else oom)

    @app.get("/incidents/health/{seq}", response_class=HTMLResponse)
    def health_change(seq: int, request: Request) -> HTMLResponse:
        session = signed_in(board, request)
        change = board.changes.get(seq)
        if change is None or change.report is None:
            raise HTTPException(404, f"No health change {seq} is remembered (the agent keeps "
                                     "the last few since it started).")
        return board.page("health_change.html", session, change=change,
                          report=redactor()(json_text(change.report)))

    @app.get("/incidents/{incident_id}", response_class=HTMLResponse)
    def incident(incident_id: str, request: Request) -> HTMLResponse:
        session = signed_in(board, request)
        found = find(incident_id)
        files = [Path(p).name for p in found.evidence]
        return board.page("incident.html", session, incident=found, files=files,
                          events=timeline((), (), [found], sinks=board.sources.alert_sinks))

    @app.get("/incidents/{incident_id}/evidence/{name}", response_model=None)
    async def evidence(incident_id: str, name: str,
                       request: Request) -> FileResponse | PlainTextResponse:
        signed_in(board, request)
        found = find(incident_id)
        path = evidence_file(board.sources.evidence_dir(found), found, name)
        if path is None:
            raise HTTPException(404, f"Incident {incident_id} has no evidence file {name}.")
        if path.name.endswith((".tar.gz", ".tgz")):
            return FileResponse(path, media_type="application/gzip", filename=path.name)
        return PlainTextResponse(await run_in_threadpool(_redacted_text, path))
