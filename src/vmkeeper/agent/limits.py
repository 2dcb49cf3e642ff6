"""How big a request body the agent takes: by Content-Length before anything is read, and while
the body streams in (a chunked body declares no length) — 413 in one sentence either way.

Written as a small ASGI wrapper of ``receive`` because Starlette has no body limit of its own
and uvicorn's (``h11_max_incomplete_event_size``) bounds headers, not bodies.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vmkeeper.agent import hooks

MAX_BODY = 64 * 1024  # a /v1 body is a branch or a release name: a few hundred bytes


def body_limit(path: str) -> int:
    """The most bytes a body to ``path`` may have: a push webhook lists commits (GitHub's
    payload of a big push is hundreds of KiB), everything else is small."""
    return hooks.MAX_BODY if path.startswith("/v1/hooks/") else MAX_BODY


def too_large(limit: int) -> HTTPException:
    return HTTPException(413, f"The body is over {limit} bytes; send a smaller one.")


def declared_too_large(content_length: str | None, limit: int) -> bool:
    """True when Content-Length says more than ``limit`` (or is not a number at all)."""
    if content_length is None:
        return False
    return not content_length.strip().isdigit() or int(content_length) > limit


class BodyCap:
    """Counts the bytes each ``http.request`` message brings and raises 413 (an HTTPException,
    so the route's app answers it) as soon as they pass the path's limit: never held whole."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(str(scope.get("path", "")))
        received = 0

        async def capped() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise too_large(limit)
            return message

        await self.app(scope, capped, send)
