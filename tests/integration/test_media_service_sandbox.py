"""The sandbox's fifth PM2 app: the backend route hands an uploaded video to the media service."""

from __future__ import annotations

import time
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import SandboxHandle
from tests.media_service.helpers import make_video

pytestmark = pytest.mark.slow


def test_backend_route_reverses_an_uploaded_video_through_the_media_service(
        sandbox: SandboxHandle) -> None:
    settings = sandbox.settings
    assert sandbox.pm2.app(settings.apps.media.name) is not None
    make_video(settings.media.storage_root / "tour" / "clip.mp4")
    backend = f"http://127.0.0.1:{settings.apps.backend.port}"
    # The media service may still be starting when PM2 reports it online.
    deadline = time.monotonic() + 30
    while True:
        answer = httpx.post(f"{backend}/api/videos/{quote('tour/clip.mp4', safe='')}/reverse",
                            timeout=15)
        if answer.status_code != 502 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert answer.status_code == 202, answer.text
    job_id = answer.json()["id"]
    deadline = time.monotonic() + 120
    while True:
        job = httpx.get(f"{backend}/api/videos/jobs/{job_id}", timeout=15).json()
        if job["state"] in ("done", "failed", "rejected") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert job["state"] == "done", job
    assert (settings.media.storage_root / "reversed" / "tour" / "clip.mp4").is_file()
    escape = httpx.post(f"{backend}/api/videos/{quote('../secret.mp4', safe='')}/reverse",
                        timeout=15)
    assert escape.status_code == 400
