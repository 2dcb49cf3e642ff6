"""HTTP probes: one request, a hard timeout, and the failure told apart (refused vs timeout);
and the one readiness wait built on them (the switch's gate, the sandbox's site check).

A probe is one request to a loopback or public URL, so the standard library's http.client does
it: httpx (with httpcore, anyio and idna) cost ~70 ms to import, a fifth of the time `vmkeeper
health` may take (monitoring runs it every minute). Only the first 8 KiB of a body is read.
"""

from __future__ import annotations

import http.client
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol
from urllib.parse import urlsplit

Clock = Callable[[], float]
Sleep = Callable[[float], None]


class ProbeError(str, Enum):
    REFUSED = "refused"
    TIMEOUT = "timeout"
    DNS = "dns"
    OTHER = "error"


@dataclass(frozen=True)
class Probe:
    url: str
    status: int | None
    server: str | None
    seconds: float
    error: ProbeError | None = None
    detail: str | None = None
    body_head: str = ""

    @property
    def proxy_unavailable(self) -> bool:
        """Apache's own 503 (upstream unreachable), not an error page of the app behind it."""
        return (
            self.status == 503
            and (self.server or "").lower().startswith("apache")
            and "Service Unavailable" in self.body_head
        )


_BODY_HEAD_BYTES = 8192


def _connection(url: str, timeout: float) -> tuple[http.client.HTTPConnection, str]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url}")
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return kind(parts.hostname, parts.port, timeout=timeout), target


def probe(
    url: str, *, timeout: float, method: str = "GET", headers: dict[str, str] | None = None
) -> Probe:
    """One request to ``url`` (no redirects followed); a failure is a value, never raised."""
    started = time.monotonic()

    def failed(kind: ProbeError, detail: str) -> Probe:
        return Probe(url, None, None, time.monotonic() - started, kind, detail)

    try:
        connection, target = _connection(url, timeout)
    except ValueError as error:
        return failed(ProbeError.OTHER, str(error))
    try:
        connection.request(method, target, headers=headers or {})
        response = connection.getresponse()
        body = response.read(_BODY_HEAD_BYTES) if method != "HEAD" else b""
        return Probe(url=url, status=response.status, server=response.getheader("server"),
                     seconds=time.monotonic() - started,
                     body_head=body.decode("utf-8", errors="replace")[:2000])
    except ConnectionRefusedError as error:
        return failed(ProbeError.REFUSED, str(error) or "refused")
    except socket.gaierror as error:
        return failed(ProbeError.DNS, str(error))
    except TimeoutError as error:
        return failed(ProbeError.TIMEOUT, str(error) or f"no answer within {timeout:g} s")
    except (OSError, ValueError, http.client.HTTPException) as error:
        return failed(ProbeError.OTHER, str(error) or type(error).__name__)
    finally:
        connection.close()


class Prober(Protocol):
    """What the readiness wait asks: :func:`probe` itself, or a test's fake of the site."""

    def __call__(self, url: str, *, timeout: float) -> Probe: ...


@dataclass(frozen=True)
class Readiness:
    """How a wait ended: every URL answered as expected (``ok``) or the time ran out, and what
    each URL last answered."""

    ok: bool
    seconds: float
    answers: dict[str, str] = field(default_factory=dict)

    @property
    def last(self) -> str:
        if len(self.answers) == 1:
            return next(iter(self.answers.values()))
        return "; ".join(f"{url} → {seen}" for url, seen in self.answers.items()) or "not tried"


def wait_until_answering(
    expected: Mapping[str, int],
    *,
    timeout: float,
    interval: float = 0.25,
    probe: Prober = probe,
    clock: Clock = time.monotonic,
    sleep: Sleep = time.sleep,
    also: Callable[[], str | None] | None = None,
) -> Readiness:
    """Poll every URL until each answers its expected status, for at most ``timeout`` seconds.

    ``also`` is asked once all of them do: None when the rest of readiness holds too, else the
    sentence that says why not (the switch: a 200 from a process that is not the new release).
    """
    started = clock()
    answers = dict.fromkeys(expected, "not tried")
    while True:
        pending = False
        for url, status in expected.items():
            result = probe(url, timeout=max(min(5.0, timeout), 0.1))
            if result.status == status:
                answers[url] = str(status)
                continue
            pending = True
            answers[url] = (f"HTTP {result.status} (expected {status})"
                            if result.error is None and not result.proxy_unavailable
                            else describe(result))
        if not pending:
            why_not = also() if also is not None else None
            if why_not is None:
                return Readiness(True, clock() - started, answers)
            answers = {url: f"{seen}, but {why_not}" for url, seen in answers.items()}
        if clock() - started >= timeout:
            return Readiness(False, clock() - started, answers)
        sleep(interval)


def describe(result: Probe) -> str:
    if result.error is ProbeError.REFUSED:
        return "connection refused"
    if result.error is ProbeError.TIMEOUT:
        return "no answer (timeout)"
    if result.error is not None:
        return f"{result.error.value}: {result.detail}"
    if result.proxy_unavailable:
        return "503 from Apache (upstream unreachable)"
    return f"{result.status}"
