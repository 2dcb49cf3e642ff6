"""The media service under hostile input: the security review's findings, each refused cleanly.

Token before body, a capped body, no echo in a 422, odd tokens and keys as 4xx (not 500), one
job per file whatever the key's spelling, a queue cap, bounded cached answers, and a source
swapped for a symlink after submit (a rejected input: the breaker stays closed).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from vmkeeper.agent.app import MAX_BODY_BYTES, create_app
from vmkeeper.media.breaker import BreakerState
from vmkeeper.media.jobs import JobState
from vmkeeper.media.runner import Reason

from .fakes import scripted_queue
from .helpers import TOKEN, settings_for

AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def setup(tmp_path: Path):  # type: ignore[no-untyped-def]
    (tmp_path / "uploads").mkdir()
    (tmp_path / "uploads" / "clip.mp4").write_bytes(b"video")
    queue, executor, _ = scripted_queue(settings_for(tmp_path, max_queued=2))
    # raise_server_exceptions=False: a bug must show as the 500 a client would get.
    return TestClient(create_app(queue, TOKEN), raise_server_exceptions=False), queue, executor


def test_the_token_is_checked_before_the_body_is_parsed(setup) -> None:  # type: ignore[no-untyped-def]
    client = setup[0]
    garbage = b"[" + b"1," * 50_000  # not even JSON: parsing it first answered 422
    response = client.post("/reverse", content=garbage,
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 401


def test_a_body_over_the_cap_is_413_without_being_parsed(setup) -> None:  # type: ignore[no-untyped-def]
    client, queue, _ = setup
    body = json.dumps({"key": "clip.mp4", "padding": "x" * (MAX_BODY_BYTES + 1)})
    response = client.post("/reverse", content=body, headers=AUTH)
    assert response.status_code == 413
    assert str(MAX_BODY_BYTES) in response.json()["detail"]
    assert queue.jobs() == []


@pytest.mark.parametrize("body", ['["SENTINEL-4242"]', '{"key": ["SENTINEL-4242"]}',
                                  '{"nokey": "SENTINEL-4242"}', "SENTINEL-4242"])
def test_a_422_says_what_is_wrong_and_never_echoes_the_body(setup, body: str) -> None:  # type: ignore[no-untyped-def]
    response = setup[0].post("/reverse", content=body, headers=AUTH)
    assert response.status_code == 422
    assert "SENTINEL" not in response.text
    assert response.json()["detail"].startswith("The request is not valid")


def test_a_422_on_a_query_never_echoes_it(setup) -> None:  # type: ignore[no-untyped-def]
    response = setup[0].get("/jobs?state=SENTINEL-4242", headers=AUTH)
    assert response.status_code == 422 and "SENTINEL" not in response.text


def test_a_non_ascii_bearer_token_is_401(setup) -> None:  # type: ignore[no-untyped-def]
    client = setup[0]
    for value in ("Bearer é".encode(), "Bearer \u00ff".encode("latin-1"), b"Bearer \xff\xfe"):
        response = client.get("/jobs", headers={"Authorization": value})  # type: ignore[dict-item]
        assert response.status_code == 401


def test_a_5000_character_key_is_4xx_with_one_sentence(setup) -> None:  # type: ignore[no-untyped-def]
    client, _queue, executor = setup
    for key, status in (("a" * 5000, 400), ("a" * 300 + ".mp4", 400),
                        ("/".join(["a" * 200] * 4) + ".mp4", 404)):  # long, but a valid name
        response = client.post("/reverse", json={"key": key}, headers=AUTH)
        assert response.status_code == status, (len(key), response.text[:200])
        detail = response.json()["detail"]
        assert detail.count(". ") == 0 and len(detail) < 1200
    assert executor.runs == []


def test_every_spelling_of_one_file_is_one_job_and_one_run(setup) -> None:  # type: ignore[no-untyped-def]
    client, queue, executor = setup
    ids = set()
    for key in ("clip.mp4", "clip.mp4/", "./clip.mp4", ".//clip.mp4", "./././clip.mp4"):
        response = client.post("/reverse", json={"key": key}, headers=AUTH)
        assert response.status_code == 202, key
        assert response.json()["key"] == "clip.mp4"
        ids.add(response.json()["id"])
    assert len(ids) == 1
    while queue.runner.run_once():
        pass
    assert executor.runs == ["clip.mp4"]


def test_beyond_max_queued_a_submit_is_429(setup) -> None:  # type: ignore[no-untyped-def]
    client, queue, _ = setup
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        (queue.media.storage_root / name).write_bytes(b"video")
    assert client.post("/reverse", json={"key": "a.mp4"}, headers=AUTH).status_code == 202
    assert client.post("/reverse", json={"key": "b.mp4"}, headers=AUTH).status_code == 202
    refused = client.post("/reverse", json={"key": "c.mp4"}, headers=AUTH)
    assert refused.status_code == 429 and "media.max_queued" in refused.json()["detail"]
    assert "Retry-After" in refused.headers
    # A duplicate of a queued key is still answered: it adds nothing to the queue.
    assert client.post("/reverse", json={"key": "a.mp4"}, headers=AUTH).status_code == 202
    queue.runner.run_once()
    assert client.post("/reverse", json={"key": "c.mp4"}, headers=AUTH).status_code == 202


def test_cached_answers_keep_one_row_per_key(setup) -> None:  # type: ignore[no-untyped-def]
    client, queue, _ = setup
    client.post("/reverse", json={"key": "clip.mp4"}, headers=AUTH)
    queue.runner.run_once()
    ids = set()
    for _ in range(20):
        answer = client.post("/reverse", json={"key": "./clip.mp4"}, headers=AUTH)
        assert answer.status_code == 200 and answer.json()["cached"] is True
        ids.add(answer.json()["id"])
    counts = queue.store.counts()
    assert counts[JobState.DONE] == 2, counts  # the run, and the latest cached answer
    # One id for every cached answer: each asker can still look its job up (it used to be
    # deleted by the next answer — a 404 for the asker, a 500 for a concurrent one).
    assert len(ids) == 1
    cached = client.get(f"/jobs/{ids.pop()}", headers=AUTH)
    assert cached.status_code == 200 and cached.json()["state"] == "done"
    newest = client.get("/jobs", headers=AUTH).json()["jobs"][0]
    assert newest["cached"] is True  # refreshed answers are the newest row


def test_a_source_swapped_for_a_symlink_after_submit_is_rejected_not_a_failure(
        setup, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    client, queue, executor = setup
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"secret")
    client.post("/reverse", json={"key": "clip.mp4"}, headers=AUTH)
    source = queue.media.storage_root / "clip.mp4"
    source.unlink()
    source.symlink_to(outside)
    job = queue.runner.run_once()
    assert job is not None and job.state is JobState.REJECTED, job
    assert job.reason == Reason.REJECTED and "outside the storage root" in (job.error or "")
    status = queue.breaker.status()
    assert status.state is BreakerState.CLOSED and status.consecutive_failures == 0
    assert executor.runs == []
