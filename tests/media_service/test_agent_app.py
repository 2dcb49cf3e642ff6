"""The HTTP API in-process (TestClient): token, status codes, dedup, breaker, health, metrics."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from vmkeeper.agent.app import create_app

from .fakes import MEDIA_FAILURE, scripted_queue
from .helpers import TOKEN, FakeClock, settings_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "a.mp4").write_bytes(b"video")
    clock = FakeClock()
    queue, executor, _ = scripted_queue(
        settings_for(tmp_path, breaker={"failure_threshold": 1, "cooldown_ms": 42_000}), clock)
    return TestClient(create_app(queue, TOKEN)), queue, executor, clock


def test_every_route_but_health_needs_the_token(setup) -> None:  # type: ignore[no-untyped-def]
    client = setup[0]
    for method, path in [("POST", "/reverse"), ("GET", "/jobs"), ("GET", "/jobs/x"),
                         ("GET", "/metrics"), ("GET", "/breaker")]:
        assert client.request(method, path).status_code == 401
        assert client.request(method, path,
                              headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/health").status_code == 200


def test_submit_then_duplicate_then_cached(setup) -> None:  # type: ignore[no-untyped-def]
    client, queue, executor, _ = setup
    first = client.post("/reverse", json={"key": "a.mp4"}, headers=AUTH)
    assert first.status_code == 202
    body = first.json()
    assert body["state"] == "queued" and body["position"] == 1 and body["key"] == "a.mp4"
    again = client.post("/reverse", json={"key": "a.mp4"}, headers=AUTH)
    assert again.status_code == 202 and again.json()["id"] == body["id"]
    assert again.json()["disposition"] == "deduplicated"
    queue.runner.run_once()
    done = client.get(f"/jobs/{body['id']}", headers=AUTH).json()
    assert done["state"] == "done" and done["output"].endswith("reversed/a.mp4")
    cached = client.post("/reverse", json={"key": "a.mp4"}, headers=AUTH)
    assert cached.status_code == 200 and cached.json()["cached"] is True
    assert client.get("/jobs?state=done", headers=AUTH).json()["jobs"][0]["state"] == "done"
    assert client.get("/jobs/nope", headers=AUTH).status_code == 404
    assert executor.runs == ["a.mp4"]


@pytest.mark.parametrize("key", ["/etc/passwd", "../x.mp4", "a/../../x.mp4", "link.mp4"])
def test_escaping_keys_are_400_and_nothing_outside_is_read(setup, tmp_path: Path,  # type: ignore[no-untyped-def]
                                                          key: str) -> None:
    client, queue, executor, _ = setup
    outside = tmp_path / "outside.mp4"
    outside.write_bytes(b"secret")
    os.utime(outside, (1, 1))
    (tmp_path / "uploads" / "link.mp4").symlink_to(outside)
    response = client.post("/reverse", json={"key": key}, headers=AUTH)
    assert response.status_code == 400
    assert queue.jobs() == [] and executor.runs == []
    assert outside.stat().st_atime == 1, "the file outside the root was opened"


def test_open_breaker_is_503_with_retry_after(setup) -> None:  # type: ignore[no-untyped-def]
    client, queue, executor, clock = setup
    (queue.media.storage_root / "b.mp4").write_bytes(b"video")
    executor.outcomes["b.mp4"] = MEDIA_FAILURE
    client.post("/reverse", json={"key": "b.mp4"}, headers=AUTH)
    queue.runner.run_once()
    refused = client.post("/reverse", json={"key": "a.mp4"}, headers=AUTH)
    assert refused.status_code == 503 and refused.headers["Retry-After"] == "42"
    breaker = client.get("/breaker", headers=AUTH).json()
    assert breaker["state"] == "open" and breaker["consecutive_failures"] == 1
    clock.advance(42)
    assert client.post("/reverse", json={"key": "a.mp4"}, headers=AUTH).status_code == 202


def test_health_and_metrics(setup) -> None:  # type: ignore[no-untyped-def]
    client, _queue, _, _ = setup
    client.post("/reverse", json={"key": "a.mp4"}, headers=AUTH)
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["isolation"]["mechanism"] == "rlimit-as"
    assert health["counts"]["queued"] == 1
    text = client.get("/metrics", headers=AUTH).text
    assert "vmkeeper_media_queue_depth 1" in text
    assert 'vmkeeper_media_jobs_total{state="failed"} 0' in text
    assert "vmkeeper_media_breaker_state 0" in text
    assert "vmkeeper_media_job_seconds_count 0" in text
