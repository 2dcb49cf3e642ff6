"""The media service's HTTP API: thin — parse, call :class:`MediaQueue`, serialise.

Loopback only, every route but ``/health`` behind the bearer token (``media.token``): the
backend holds the token; ``/health`` stays open so PM2-side checks need no secret.

The order matters on hostile input: the token is checked before the body is read (a 40 MB body
without a token used to be parsed whole: 61 → 296 MiB); the body is then read up to
:data:`MAX_BODY_BYTES` and refused beyond; a 422 names the problem and never echoes the body.
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ValidationError
from starlette.concurrency import run_in_threadpool

from vmkeeper.agent import metrics
from vmkeeper.jsonable import to_jsonable
from vmkeeper.media.jobqueue import (
    BreakerRefused,
    Disposition,
    JobNotFound,
    JobView,
    KeyRefused,
    MediaQueue,
    QueueFull,
    SourceMissing,
)
from vmkeeper.media.jobs import JobState

# {"key": "<a path of up to 1024 characters>", "force": true} fits many times over.
MAX_BODY_BYTES = 8 * 1024


class ReverseRequest(BaseModel):
    key: str
    force: bool = False


def job_json(view: JobView) -> dict[str, Any]:
    job = view.job
    data: dict[str, Any] = {
        "id": job.id, "key": job.key, "state": job.state.value, "position": view.position,
        "attempts": job.attempts, "created_at": job.created_at, "started_at": job.started_at,
        "finished_at": job.finished_at, "seconds": job.seconds, "output": job.output,
        "error": job.error, "reason": job.reason, "cached": job.cached,
        "details": to_jsonable(job.details),
    }
    if view.disposition is not None:
        data["disposition"] = view.disposition.value
    return data


def token_matches(authorization: str | None, token: str) -> bool:
    """Constant-time check of ``Bearer <token>``; any header bytes at all are a plain no."""
    scheme, _sep, given = (authorization or "").partition(" ")
    # Header values arrive as latin-1 text: compare bytes, so a non-ASCII token is a mismatch
    # (401), not the TypeError compare_digest raises for non-ASCII strings (500).
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("latin-1", "replace"), token.encode("utf-8"))


def _problem(errors: list[Any]) -> str:
    """One sentence from pydantic's errors, without the input (it may be anything)."""
    first = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    return (f"The request is not valid: {where}: {first.get('msg', 'invalid')} "
            '(send {"key": "<storage key>", "force": false}).')


async def _read_body(request: Request) -> bytes:
    """The body, refused (413) as soon as it passes MAX_BODY_BYTES: never held whole."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise HTTPException(413, f"The body is {declared} bytes; at most {MAX_BODY_BYTES} "
                                 "are accepted.")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise HTTPException(413, f"The body is over {MAX_BODY_BYTES} bytes; at most "
                                     f"{MAX_BODY_BYTES} are accepted.")
    return bytes(body)


# How the agent admits a request to the media routes it mounts under /v1/media: its own
# scoped tokens (``needed`` is "operate" to submit, "read" to look); raises HTTPException.
Admit = Callable[[Request, str | None, str], object]


def create_app(queue: MediaQueue, token: str | None, admit: Admit | None = None) -> FastAPI:
    """The media API; ``admit`` (the agent's tokens) is tried when ``media.token`` does not
    match, so the backend's token keeps working under /v1/media."""
    app = FastAPI(title="vmkeeper media", docs_url=None, redoc_url=None, openapi_url=None)
    if admit is None:  # standalone (`media serve`); under the agent, the agent's span covers it
        from vmkeeper.telemetry.requests import request_span

        app.middleware("http")(request_span)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _problem(list(error.errors()))}, 422)

    def authorizer(needed: str) -> Callable[..., None]:
        def authorized(request: Request,
                       authorization: Annotated[str | None, Header()] = None) -> None:
            if token is not None and token_matches(authorization, token):
                return
            if admit is not None:
                admit(request, authorization, needed)
                return
            raise HTTPException(401, "A bearer token (media.token) is required.",
                                headers={"WWW-Authenticate": "Bearer"})
        return authorized

    auth = [Depends(authorizer("read"))]
    operate = [Depends(authorizer("operate"))]

    # No body parameter: FastAPI would read and parse the body before the token is checked.
    @app.post("/reverse", dependencies=operate)
    async def reverse(request: Request) -> JSONResponse:
        try:
            submitted = ReverseRequest.model_validate_json(await _read_body(request))
        except ValidationError as error:
            return JSONResponse({"detail": _problem(error.errors(include_input=False))}, 422)
        try:
            view = await run_in_threadpool(queue.submit, submitted.key, force=submitted.force)
        except KeyRefused as error:
            raise HTTPException(400, str(error)) from None
        except SourceMissing as error:
            raise HTTPException(404, str(error)) from None
        except QueueFull as error:
            return JSONResponse({"detail": str(error)}, 429, headers={"Retry-After": "60"})
        except BreakerRefused as error:
            retry = max(1, math.ceil(error.retry_after_s))
            return JSONResponse({"detail": str(error), "retry_after_s": retry}, 503,
                                headers={"Retry-After": str(retry)})
        status = 200 if view.disposition is Disposition.CACHED else 202
        return JSONResponse(job_json(view), status)

    @app.get("/jobs/{job_id}", dependencies=auth)
    def job(job_id: str) -> dict[str, Any]:
        try:
            return job_json(queue.get(job_id))
        except JobNotFound as error:
            raise HTTPException(404, str(error)) from None

    @app.get("/jobs", dependencies=auth)
    def jobs(state: JobState | None = None,
             limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        return {"jobs": [job_json(view) for view in queue.jobs(state, limit)]}

    @app.get("/breaker", dependencies=auth)
    def breaker() -> dict[str, Any]:
        result: dict[str, Any] = to_jsonable(queue.breaker.status())
        return result

    @app.get("/health")
    def health() -> dict[str, Any]:
        result: dict[str, Any] = to_jsonable(queue.health())
        return result

    @app.get("/metrics", dependencies=auth, response_class=PlainTextResponse)
    def prometheus() -> str:
        return metrics.render(queue)

    return app
