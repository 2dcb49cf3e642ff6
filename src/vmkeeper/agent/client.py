"""A client of the media service for the CLI: one request at a time, each with a timeout."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from vmkeeper.errors import BreakerOpen, MediaRejected, VmkeeperError
from vmkeeper.settings import Settings

_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class MediaClient:
    base_url: str
    token: str | None
    timeout_s: float = _TIMEOUT_S

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaClient:
        return cls(settings.media_url(), settings.media.token)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        try:
            response = httpx.request(method, self.base_url + path, headers=headers,
                                     timeout=self.timeout_s, **kwargs)
        except httpx.ConnectError:
            raise VmkeeperError(f"The media service does not answer on {self.base_url}: start "
                                "the agent (`vmkeeper agent serve`), or set media.url to where "
                                "`vmkeeper media serve` listens.") from None
        except httpx.TimeoutException:
            raise VmkeeperError(f"The media service on {self.base_url} did not answer within "
                                f"{self.timeout_s:g} s.") from None
        if response.status_code == 401:
            raise VmkeeperError("The media service refused the token: set media.token to the "
                                "service's token.", exit_code=2)
        if response.status_code == 503:
            raise BreakerOpen(_detail(response))
        if response.status_code in (400, 404, 413, 422):
            raise MediaRejected(_detail(response))
        if response.status_code == 429:
            raise VmkeeperError(_detail(response))
        response.raise_for_status()
        return response

    def submit(self, key: str, force: bool = False) -> dict[str, Any]:
        result: dict[str, Any] = self._request(
            "POST", "/reverse", json={"key": key, "force": force}).json()
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", f"/jobs/{job_id}").json()
        return result

    def jobs(self, state: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, **({"state": state} if state else {})}
        result: list[dict[str, Any]] = self._request("GET", "/jobs", params=params).json()["jobs"]
        return result

    def breaker(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/breaker").json()
        return result

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/health").json()
        return result


def _detail(response: httpx.Response) -> str:
    try:
        return str(response.json().get("detail"))
    except ValueError:
        return response.text[:200]
