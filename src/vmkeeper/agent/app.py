"""The media service's HTTP API: thin — parse, call :class:`MediaQueue`, serialise.

Loopback only, every route but ``/health`` behind the bearer token (``media.token``): the
backend holds the token; ``/health`` stays open so PM2-side checks need no secret.
"""

from __future__ import annotations

import hmac
import math
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel

from vmkeeper.agent import metrics
from vmkeeper.jsonable import to_jsonable
from vmkeeper.media.jobqueue import (
    BreakerRefused,
    Disposition,
    JobNotFound,
    JobView,
    KeyRefused,
    MediaQueue,
    SourceMissing,
)
from vmkeeper.media.jobs import JobState


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


def create_app(queue: MediaQueue, token: str) -> FastAPI:
    app = FastAPI(title="vmkeeper media", docs_url=None, redoc_url=None, openapi_url=None)

    def authorized(authorization: Annotated[str | None, Header()] = None) -> None:
        scheme, _sep, given = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            raise HTTPException(401, "A bearer token (media.token) is required.",
                                headers={"WWW-Authenticate": "Bearer"})

    auth = [Depends(authorized)]

    @app.post("/reverse", dependencies=auth)
    def reverse(request: ReverseRequest) -> JSONResponse:
        try:
            view = queue.submit(request.key, force=request.force)
        except KeyRefused as error:
            raise HTTPException(400, str(error)) from None
        except SourceMissing as error:
            raise HTTPException(404, str(error)) from None
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
