"""One service on the VM: the backend route hands an uploaded video to the agent's /v1/media
(no media app under PM2)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import SandboxHandle
from tests.media_service.helpers import make_video
from tests.support.waiting import wait_for

pytestmark = pytest.mark.slow


def test_backend_route_reverses_an_uploaded_video_through_the_media_service(
        sandbox: SandboxHandle) -> None:
    settings = sandbox.settings
    assert sandbox.pm2.app(settings.apps.media.name) is None
    assert settings.media_url().endswith(f":{settings.agent.port}/v1/media")
    make_video(settings.media.storage_root / "tour" / "clip.mp4")
    backend = f"http://127.0.0.1:{settings.apps.backend.port}"
    # The agent answers before `sandbox up` returns; the backend may still be connecting.
    def submitted() -> httpx.Response | None:
        answer = httpx.post(f"{backend}/api/videos/{quote('tour/clip.mp4', safe='')}/reverse",
                            timeout=15)
        return answer if answer.status_code != 502 else None

    answer = wait_for(submitted, 30, "the backend to reach the media service", interval=0.5)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = httpx.get(f"{backend}/api/videos/jobs/{job_id}",
                                        timeout=15).json()
        return job if job["state"] in ("done", "failed", "rejected") else None

    job = wait_for(finished, 120, f"job {job_id} to finish", interval=0.5)
    assert job["state"] == "done", job
    assert (settings.media.storage_root / "reversed" / "tour" / "clip.mp4").is_file()
    escape = httpx.post(f"{backend}/api/videos/{quote('../secret.mp4', safe='')}/reverse",
                        timeout=15)
    assert escape.status_code == 400
