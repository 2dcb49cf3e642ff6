"""The dashboard's routes, installed on the agent's FastAPI app: ``/`` and the pages under it.

Reads need a session (any scope); mutations need a session whose token has ``operate`` *and*
the session's CSRF token in the form — the API refuses otherwise, whatever the page showed.
Every response carries a strict CSP (scripts only from /static, none inline) and
``X-Frame-Options: DENY``. Mutations do not run here: they become operations in the agent's
store (the agent's runner executes them) and records in its audit log, under the session's
token name; the operation page streams the agent's ``/v1/operations/{id}/events``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool

from vmkeeper.agent.auth import Scope
from vmkeeper.agent.fresh import Warm
from vmkeeper.dashboard import incident_pages, views
from vmkeeper.dashboard.changes import Changes
from vmkeeper.dashboard.session import COOKIE, Session, Sessions, csrf_ok

__all__ = ["Sessions", "install"]
from vmkeeper.dashboard.sources import Sources

HERE = Path(__file__).parent
MAX_FORM_BYTES = 4096
POLL_S = 4  # the overview refreshes well inside the 5 s
# The overview is read from a report the agent keeps warm: one gather (health + PM2 status,
# 250-500 ms on a busy VM) every REFRESH_S in a background thread while anyone looked in the
# last IDLE_S, so a page never waits for it. A broken layer shows within REFRESH_S + POLL_S.
REFRESH_S = 3.0
IDLE_S = 120.0
# A report older than this is said to be stale on the page (the gather is stuck or failing);
# a reader finding one that old (or none yet: the first look) waits up to WAIT_S for the next.
STALE_S = 15.0
WAIT_S = 5.0
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Frame-Options": "DENY",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "Cache-Control": "no-store"}


@dataclass(frozen=True)
class Live:
    """The overview as the page shows it: the latest warm report and how old it is."""

    view: views.Overview | None  # None: no gather has finished yet
    age_s: float | None
    stale: bool
    error: str | None  # why the last gather failed, when it did


class Dashboard:
    def __init__(self, sessions: Sessions, sources: Sources,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC),
                 clock: Callable[[], float] = time.monotonic) -> None:
        import jinja2

        self.sessions = sessions
        self.sources = sources
        self.now = now
        self.clock = clock
        self.since = views.Since()
        self.changes = Changes()
        self.warm = Warm(self._gather, REFRESH_S, IDLE_S, clock, "vmkeeper-dashboard-warm")
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                      autoescape=True, undefined=jinja2.StrictUndefined)

    def page(self, name: str, session: Session | None, status: int = 200,
             **context: Any) -> HTMLResponse:
        html = self.env.get_template(name).render(session=session, poll_s=POLL_S,
                                                  operate=Scope.OPERATE, **context)
        return HTMLResponse(html, status)

    def session(self, request: Request) -> Session | None:
        return self.sessions.get(request.cookies.get(COOKIE))

    def _gather(self) -> views.Overview:
        """The warm keeper's one step: health and PM2 status, the changes between two looks."""
        report = self.sources.health()
        status = self.sources.status()
        now = self.now()
        self.changes.note(report, status, now)
        return views.overview(report, status, self.since.note(report, now))

    def overview(self) -> Live:
        snapshot = self.warm.read(max_age_s=STALE_S, wait_s=WAIT_S)
        age = snapshot.age_s(self.clock())
        return Live(snapshot.value, None if age is None else round(age),
                    age is None or age > STALE_S, snapshot.error)


def read_only_reason(session: Session) -> str | None:
    if session.can(Scope.OPERATE):
        return None
    return (f"your token {session.token_name} has the {session.scope.value} scope; "
            "changes need operate")


async def form(request: Request) -> dict[str, str]:
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(413, f"The form is over {MAX_FORM_BYTES} bytes.")
    fields = parse_qs(body.decode("utf-8", "replace"), max_num_fields=20)
    return {key: values[0] for key, values in fields.items()}


def install(app: FastAPI, sessions: Sessions, sources: Sources,
            clock: Callable[[], float] = time.monotonic) -> Dashboard:
    board = Dashboard(sessions, sources, clock=clock)
    app.state.dashboard = board
    app.state.sessions = sessions  # the agent's admit() reads sessions for GETs under /v1
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")

    @app.middleware("http")
    async def security_headers(request: Request,
                               call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        for key, value in HEADERS.items():
            response.headers.setdefault(key, value)
        return response

    _reads(app, board)
    incident_pages.install(app, board, _signed_in)
    _sign_in(app, board)
    _mutations(app, board)
    return board


def _signed_in(board: Dashboard, request: Request) -> Session:
    session = board.session(request)
    if session is None:
        raise HTTPException(303, headers={"Location": "/"})
    return session


def _reads(app: FastAPI, board: Dashboard) -> None:
    @app.get("/", response_class=HTMLResponse)
    def home(request: Request) -> HTMLResponse:
        session = board.session(request)
        if session is None:
            return board.page("login.html", None)
        return board.page("overview.html", session, live=board.overview(), stale_s=STALE_S)

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        """Browsers ask for it on pages without a <link rel=icon> (a plain-text evidence
        file): a 404 there is a console error."""
        return FileResponse(HERE / "static" / "favicon.svg", media_type="image/svg+xml")

    @app.get("/overview/live", response_class=HTMLResponse)
    def live(request: Request) -> HTMLResponse:
        return board.page("_live.html", _signed_in(board, request), live=board.overview(),
                          stale_s=STALE_S)

    @app.get("/releases", response_class=HTMLResponse)
    def releases(request: Request) -> HTMLResponse:
        session = _signed_in(board, request)
        report = board.sources.releases()
        return board.page("releases.html", session, rows=views.releases(report, board.now()),
                          warnings=report.warnings, blocked=read_only_reason(session))

    @app.get("/releases/{release_id}/rollback", response_class=HTMLResponse)
    def preflight(release_id: str, request: Request) -> HTMLResponse:
        session = _signed_in(board, request)
        report = board.sources.releases()
        rows = {row.id: row for row in views.releases(report, board.now())}
        if release_id not in rows:
            raise HTTPException(404, f"No retained release is named {release_id}.")
        target = rows[release_id]
        check = views.preflight(
            target, report.active, board.sources.subject(target.sha),
            board.sources.env_files(release_id),
            board.sources.env_files(report.active) if report.active else [])
        return board.page("preflight.html", session, check=check,
                          blocked=read_only_reason(session) or check.blocked)

    @app.get("/operations/{op_id}", response_class=HTMLResponse)
    def operation(op_id: str, request: Request) -> HTMLResponse:
        return board.page("operation.html", _signed_in(board, request), op_id=op_id)

    @app.get("/logs", response_class=HTMLResponse)
    def logs(request: Request, app: str | None = None) -> HTMLResponse:
        session = _signed_in(board, request)
        report = board.sources.logs(app)
        names = sorted({s.source.split("/")[0] for s in board.sources.logs(None).sources}
                       ) if app else sorted({s.source.split("/")[0] for s in report.sources})
        return board.page("logs.html", session, report=report, names=names, picked=app)

    @app.get("/media", response_class=HTMLResponse)
    def media(request: Request) -> HTMLResponse:
        return board.page("media.html", _signed_in(board, request), media=board.sources.media())


def _cookie(request: Request, response: Response, session: Session | None,
            max_age: int) -> None:
    response.set_cookie(COOKIE, session.id if session else "", max_age=max_age, httponly=True,
                        samesite="strict", secure=request.url.scheme == "https", path="/")


def _sign_in(app: FastAPI, board: Dashboard) -> None:
    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        session = board.sessions.sign_in((await form(request)).get("token", ""))
        if session is None:
            return board.page("login.html", None, 401,
                              error="That token is not an agent token: paste one from "
                                    "`vmkeeper agent token add`.")
        response = RedirectResponse("/", 303)
        _cookie(request, response, session, int(board.sessions.ttl_s))
        return response

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        session = _checked(board, request, await form(request), Scope.READ)
        board.sessions.sign_out(session.id)
        response = RedirectResponse("/", 303)
        _cookie(request, response, None, 0)
        return response


def _checked(board: Dashboard, request: Request, fields: dict[str, str],
             needed: Scope) -> Session:
    session = board.session(request)
    if session is None:
        raise HTTPException(401, "Sign in first: the session is missing or expired.")
    if not csrf_ok(session, fields.get("csrf")):
        raise HTTPException(403, "The form's CSRF token is missing or stale: reload the page "
                                 "and try again.")
    if not session.can(needed):
        raise HTTPException(403, read_only_reason(session))
    return session


def _mutations(app: FastAPI, board: Dashboard) -> None:
    @app.post("/releases/{release_id}/rollback")
    async def rollback(release_id: str, request: Request) -> Response:
        fields = await form(request)
        session = _checked(board, request, fields, Scope.OPERATE)
        if fields.get("confirm") != "yes":
            raise HTTPException(400, "Tick the confirmation box to roll back.")
        op_id = await run_in_threadpool(board.sources.submit, request, "rollback",
                                        {"release": release_id}, session.token_name)
        return RedirectResponse(f"/operations/{op_id}", 303)

    @app.post("/deploy")
    async def deploy(request: Request) -> Response:
        fields = await form(request)
        session = _checked(board, request, fields, Scope.OPERATE)
        branch = fields.get("branch", "").strip()
        if not branch:
            raise HTTPException(400, "Name the branch to deploy.")
        op_id = await run_in_threadpool(board.sources.submit, request, "deploy",
                                        {"branch": branch}, session.token_name)
        return RedirectResponse(f"/operations/{op_id}", 303)
