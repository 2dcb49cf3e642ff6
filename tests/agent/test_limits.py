"""The body cap: a chunked body (no Content-Length) is refused with 413 while it streams — the
app never receives more than the limit and one chunk — and the webhook's limit is its own."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.agent.conftest import SECRET
from vmkeeper.agent import hooks, limits

CHUNK = 4096


def _chunks(total: int) -> Iterator[bytes]:
    yield b'{"branch": "'
    for _ in range(total // CHUNK):
        yield b"a" * CHUNK
    yield b'"}'


def test_a_chunked_deploy_body_over_the_limit_is_413_in_one_sentence(world) -> None:
    http, store, tokens = world
    headers = {"Authorization": f"Bearer {tokens['operate']}"}
    answer = http.post("/v1/deploy", content=_chunks(limits.MAX_BODY * 4),
                       headers={**headers, "content-type": "application/json"})
    assert answer.status_code == 413
    assert answer.json() == {"detail": f"The body is over {limits.MAX_BODY} bytes; send a "
                                       "smaller one."}
    assert answer.headers["x-request-id"] and store.next_queued() is None
    small = http.post("/v1/deploy", content=_chunks(CHUNK), headers={
        **headers, "content-type": "application/json"})
    assert small.status_code == 422 and small.json()["detail"].startswith("branch")


def test_a_webhook_may_be_bigger_than_a_command_but_not_unbounded(world) -> None:
    http, _store, _tokens = world
    commits = [{"id": "ab" * 20, "message": "x" * 1000} for _ in range(100)]  # ~110 KB
    body = json.dumps({"ref": "refs/heads/main", "after": "cd" * 20, "commits": commits}).encode()
    assert limits.MAX_BODY < len(body) < hooks.MAX_BODY

    def signed(body: bytes) -> dict[str, str]:
        return {"X-Hub-Signature-256": hooks.signature(SECRET, body), "X-GitHub-Delivery": "d",
                "content-type": "application/json"}

    assert http.post("/v1/hooks/git", content=iter([body]),
                     headers=signed(body)).status_code == 202
    huge = http.post("/v1/hooks/git", content=_chunks(hooks.MAX_BODY * 2), headers=signed(body))
    assert huge.status_code == 413 and str(hooks.MAX_BODY) in huge.json()["detail"]


def test_the_cap_stops_reading_at_the_limit_not_at_the_end_of_the_stream() -> None:
    """At the ASGI level: an endless body is refused after limit + one chunk was received."""
    received: list[int] = []

    async def endless() -> dict[str, Any]:
        received.append(CHUNK)
        return {"type": "http.request", "body": b"a" * CHUNK, "more_body": True}

    async def app(_scope: Any, receive: Any, _send: Any) -> None:
        while True:
            await receive()

    async def send(_message: Any) -> None:
        raise AssertionError("the cap raises; the app's exception handler answers")

    cap = limits.BodyCap(app)
    scope = {"type": "http", "path": "/v1/deploy", "headers": []}
    with pytest.raises(Exception) as error:
        asyncio.run(cap(scope, endless, send))
    assert getattr(error.value, "status_code", None) == 413
    assert sum(received) == limits.MAX_BODY + CHUNK


@pytest.mark.parametrize("declared", ["70000", "12abc", "-1", "99999999999999999999"])
def test_a_declared_length_over_the_limit_or_not_a_number_is_refused(declared: str) -> None:
    assert limits.declared_too_large(declared, limits.MAX_BODY)
    assert not limits.declared_too_large("65536", limits.MAX_BODY)
    assert not limits.declared_too_large(None, limits.MAX_BODY)
