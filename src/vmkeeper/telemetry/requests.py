"""A span per HTTP request of the agent (``SERVER``, named ``METHOD route`` as the HTTP
semantic conventions have it: the route's template, never the path with its ids), continuing
the caller's trace when it sent ``traceparent``. The operations a request queues carry its
trace context to their worker process (``TRACEPARENT``), see :class:`vmkeeper.agent.runner`.
No OpenTelemetry is imported here until a request arrives with telemetry on."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from vmkeeper import telemetry

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response


async def request_span(request: Request,
                       call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    """Starlette's ``http`` middleware: ``app.middleware("http")(request_span)``."""
    handle = telemetry.active()
    if handle is None:
        return await call_next(request)
    with handle.server_span(request.method, dict(request.headers)) as span:
        response = await call_next(request)
        route = request.scope.get("route")
        template = getattr(route, "path", None) or "other"  # unmatched: not the raw path
        span.update_name(f"{request.method} {template}")
        span.set_attribute("http.route", template)
        span.set_attribute("url.path", request.url.path)
        span.set_attribute("http.response.status_code", response.status_code)
        request_id = getattr(request.state, "request_id", None)
        if request_id:
            span.set_attribute("vmkeeper.request.id", request_id)
        if response.status_code >= 500:
            span.set_attribute("error.type", str(response.status_code))
        return response
