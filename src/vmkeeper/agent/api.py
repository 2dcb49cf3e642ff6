"""The agent's /v1 HTTP API: thin — authenticate, validate, record, hand to the runner.

``create_app`` is the one factory: the server, the fast tests (TestClient) and the dashboard
(which will add a session cookie in front of :func:`auth.authenticate`) all build it. Every
response carries ``X-Request-Id``; every error is ``{"detail": one sentence}``.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Annotated, Any

from fastapi import FastAPI, Header, HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, field_validator

from vmkeeper import telemetry
from vmkeeper.agent import audit, hooks, limits
from vmkeeper.agent.admission import Operate, Read
from vmkeeper.agent.runner import Runner, refuse_if_locked
from vmkeeper.agent.store import IdempotencyMismatch, OperationNotFound, OpState, Store
from vmkeeper.dashboard import sources
from vmkeeper.errors import InputError, LockHeld, VmkeeperError
from vmkeeper.jsonable import to_jsonable
from vmkeeper.settings import LoadedSettings, Settings
from vmkeeper.telemetry.requests import request_span

# A branch or release name as git and the releases folder accept it: no leading '-' (an
# option to git), no '..', no NUL or control characters, no spaces.
_NAME = re.compile(r"(?!-)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}")


def _name(value: str, what: str) -> str:
    if not _NAME.fullmatch(value) or value.endswith(("/", ".lock")):
        raise ValueError(f"the {what} must be letters, digits, '.', '_', '/' or '-', not "
                         f"starting with '-' and without '..'")
    return value


class DeployBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    branch: str | None = None

    @field_validator("branch")
    @classmethod
    def _branch(cls, value: str | None) -> str | None:
        return None if value is None else _name(value, "branch")


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    release: str = "previous"

    @field_validator("release")
    @classmethod
    def _release(cls, value: str) -> str:
        return _name(value, "release")


Key = Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)]


def create_app(settings: Settings, store: Store, runner: Runner,
               media: FastAPI | None = None, loaded: LoadedSettings | None = None) -> FastAPI:
    """The /v1 app; ``media`` (the media job API, built with :func:`admit`) is mounted under
    /v1/media when the agent runs the media queue; ``loaded`` (where the settings came from)
    goes into the bundles it makes."""
    app = FastAPI(title="vmkeeper agent", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    if media is not None:
        media.state.settings = settings
        app.mount("/v1/media", media)
    _errors(app)
    app.add_middleware(limits.BodyCap)  # a chunked body is counted as it streams

    @app.middleware("http")
    async def request_id(request: Request,
                         call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        rid = uuid.uuid4().hex
        request.state.request_id = rid
        limit = limits.body_limit(request.url.path)
        if limits.declared_too_large(request.headers.get("content-length"), limit):
            response: Response = JSONResponse({"detail": limits.too_large(limit).detail}, 413)
        else:
            response = await call_next(request)
        response.headers["X-Request-Id"] = rid
        return response

    app.middleware("http")(request_span)  # outermost: a span per request (issue 15)

    def enqueue(request: Request, who: str, kind: str, body: dict[str, Any],
                key: str | None) -> tuple[str, bool]:
        """Queue an operation (the API's and the dashboard's one way in): its id, coalesced."""
        running = store.running()
        coalesce = kind == "deploy" and all(op.kind == "deploy" for op in running)
        if running and not coalesce:
            op = running[0]
            raise LockHeld(f"Another operation is running ({op.kind} {op.id}, pid {op.pid}, "
                           f"since {op.started_at}); try again when it has finished.")
        if not running:
            refuse_if_locked(settings)  # a CLI deploy or rollback holds the shared lock
        created = store.create(kind, body, key=key, who=who,
                               request_id=request.state.request_id, coalesce=coalesce)
        runner.traced(created.operation.id)  # its worker continues this request's trace
        runner.wake()
        return created.operation.id, coalesce and not created.new

    def submit(request: Request, who: str, kind: str, body: dict[str, Any],
               key: str | None) -> JSONResponse:
        op_id, coalesced = enqueue(request, who, kind, body, key)
        return JSONResponse({"operation_id": op_id, "coalesced": coalesced}, 202)

    app.state.enqueue = enqueue

    @app.post("/v1/deploy")
    def deploy(request: Request, who: Operate, body: DeployBody | None = None,
               key: Key = None) -> JSONResponse:
        return submit(request, who.name, "deploy", (body or DeployBody()).model_dump(), key)

    @app.post("/v1/rollback")
    def rollback(request: Request, who: Operate, body: RollbackBody,
                 key: Key = None) -> JSONResponse:
        return submit(request, who.name, "rollback", body.model_dump(), key)

    @app.post("/v1/recover")
    def recover(request: Request, who: Operate, key: Key = None) -> JSONResponse:
        return submit(request, who.name, "recover", {}, key)

    _reads(app, settings)
    from vmkeeper.agent import diagnostics

    loaded = loaded or LoadedSettings(settings, {}, None)
    diagnostics.install(app, loaded)
    from vmkeeper.agent import tokens_api

    tokens_api.install(app, loaded)
    _operations(app, store, runner)

    @app.post("/v1/hooks/git")
    async def git_hook(request: Request) -> JSONResponse:
        secret = settings.agent.webhook_secret
        if not secret:
            raise HTTPException(404, "Webhooks are off; set agent.webhook_secret to turn them on.")
        raw = await request.body()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            hooks.verify(headers, raw, secret)
        except hooks.BadSignature as error:
            raise HTTPException(401, str(error)) from None
        push = hooks.parse(headers, raw, settings.agent.branch)
        if not push.deploys:
            return JSONResponse({"deploy": False, "detail": f"ignored: {push.ref or 'no ref'}"})
        if push.delivery and not store.first_delivery(push.delivery):
            return JSONResponse({"deploy": False, "detail": "a replayed delivery; ignored"})
        return submit(request, "webhook", "deploy", {"branch": settings.agent.branch}, None)

    from vmkeeper.dashboard import routes  # the dashboard at /, on the same tokens

    routes.install(app, routes.Sessions(settings.state_dir), sources.from_settings(settings))
    return app


def _reads(app: FastAPI, settings: Settings) -> None:
    from vmkeeper.agent.fresh import Fresh

    def status_report() -> Any:
        from vmkeeper.health.service import run_status

        return to_jsonable(run_status(settings))

    def health_report() -> Any:
        from vmkeeper.health.service import run_health

        return to_jsonable(run_health(settings, remember=False))

    status_now, health_now = Fresh(status_report), Fresh(health_report)

    @app.get("/v1/status")
    def status(_who: Read) -> Any:
        return status_now.get()

    @app.get("/v1/health")
    def health(_who: Read) -> Any:
        return health_now.get()

    @app.get("/v1/releases")
    def releases(_who: Read) -> Any:
        from vmkeeper.releases.rollback import list_releases

        return to_jsonable(list_releases(settings))

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics(_who: Read) -> str:
        """Prometheus text of the telemetry families (issue 15); empty when it is off."""
        handle = telemetry.active()
        return handle.prometheus_text() if handle is not None else ""


def _operations(app: FastAPI, store: Store, runner: Runner) -> None:
    @app.get("/v1/operations/{op_id}")
    def operation(op_id: str, _who: Read) -> Any:
        return to_jsonable(store.get(op_id))

    @app.post("/v1/operations/{op_id}/cancel")
    def cancel(op_id: str, _who: Operate) -> Any:
        return runner.cancel(op_id)

    @app.get("/v1/operations/{op_id}/events")
    def events(op_id: str, _who: Read,
               last: Annotated[str | None, Header(alias="Last-Event-ID")] = None
               ) -> StreamingResponse:
        store.get(op_id)
        after = int(last) if last and last.isdigit() else 0

        async def stream() -> AsyncIterator[str]:
            seen = after
            while True:
                for seq, event in store.events_after(op_id, seen):
                    seen = seq
                    yield f"id: {seq}\nevent: {event.get('type', 'step')}\ndata: " \
                          f"{_one_line(event)}\n\n"
                    if event.get("type") == "result":
                        return
                if store.get(op_id).state.finished and not list(store.events_after(op_id,
                                                                                   seen)):
                    return
                await asyncio.sleep(0.2)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})


def _one_line(event: dict[str, Any]) -> str:
    import json

    return json.dumps(to_jsonable(event))


def _errors(app: FastAPI) -> None:
    statuses: list[tuple[type[Exception], int]] = [
        (OperationNotFound, 404), (IdempotencyMismatch, 422), (LockHeld, 409),
        (InputError, 400), (VmkeeperError, 500)]
    for kind, code in statuses:
        def handler(_request: Request, error: Exception, code: int = code) -> JSONResponse:
            return JSONResponse({"detail": str(error)}, code)
        app.add_exception_handler(kind, handler)

    @app.exception_handler(RequestValidationError)
    def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
        return JSONResponse({"detail": f"{where or 'The body'}: {message}."}, 422)


__all__ = ["OpState", "audit", "create_app"]
