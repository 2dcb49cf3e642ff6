"""HTTP probes: one request, a hard timeout, and the failure told apart (refused vs timeout)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import Enum

import httpx


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


def probe(
    url: str, *, timeout: float, method: str = "GET", headers: dict[str, str] | None = None
) -> Probe:
    started = time.monotonic()
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client:
            response = client.request(method, url, headers=headers)
            return Probe(
                url=url,
                status=response.status_code,
                server=response.headers.get("server"),
                seconds=time.monotonic() - started,
                body_head=response.text[:2000] if method != "HEAD" else "",
            )
    except httpx.ConnectError as error:
        kind = ProbeError.DNS if "name" in str(error).lower() and "resol" in str(error).lower() \
            else ProbeError.REFUSED
        return Probe(url, None, None, time.monotonic() - started, kind, str(error) or "refused")
    except httpx.TimeoutException as error:
        return Probe(url, None, None, time.monotonic() - started, ProbeError.TIMEOUT,
                     str(error) or f"no answer within {timeout:g} s")
    except httpx.HTTPError as error:
        return Probe(url, None, None, time.monotonic() - started, ProbeError.OTHER, str(error))


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
