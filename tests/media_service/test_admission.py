"""Admission control: while the host is under memory pressure the media service queues no new
job (503 with Retry-After) and says so in /health; when it eases, jobs are admitted again."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from vmkeeper.agent.app import create_app
from vmkeeper.media.jobs import JobState

from .fakes import CALM, HIGH, scripted_queue
from .helpers import TOKEN, settings_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def test_memory_pressure_refuses_new_jobs_and_shows_in_health(tmp_path: Path) -> None:
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "clip.mp4").write_bytes(b"video")
    queue, _executor, _ = scripted_queue(settings_for(tmp_path))
    client = TestClient(create_app(queue, TOKEN), raise_server_exceptions=False)
    queue.pressure = lambda: HIGH
    refused = client.post("/reverse", json={"key": "clip.mp4"}, headers=AUTH)
    assert refused.status_code == 503 and "memory pressure" in refused.json()["detail"]
    assert refused.headers["Retry-After"] == "30"
    assert client.get("/health").json()["memory_pressure"] == HIGH.line
    assert queue.store.counts()[JobState.QUEUED] == 0
    queue.pressure = lambda: CALM
    assert client.post("/reverse", json={"key": "clip.mp4"}, headers=AUTH).status_code == 202
    assert client.get("/health").json()["memory_pressure"] is None
