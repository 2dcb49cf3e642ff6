"""The /v1 API in-process (the ``world`` of conftest.py): tokens and scopes, hostile input,
idempotency, coalescing, the lock, webhooks, the event stream."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.agent.conftest import SECRET
from vmkeeper.agent import hooks
from vmkeeper.agent.store import OpState


def _as(tokens: dict[str, str], scope: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens[scope]}"}


def test_no_token_is_401_the_wrong_scope_403_and_every_answer_has_a_request_id(world) -> None:
    client, _store, tokens = world
    missing = client.post("/v1/deploy", json={})
    assert missing.status_code == 401 and missing.headers["x-request-id"]
    wrong = client.post("/v1/deploy", json={}, headers=_as(tokens, "read"))
    assert wrong.status_code == 403 and "operate" in wrong.json()["detail"]
    bad = client.post("/v1/deploy", json={}, headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    assert client.post("/v1/deploy", json={}, headers=_as(tokens, "admin")).status_code == 202


@pytest.mark.parametrize("branch", ["-rf", "--upload-pack=x", "a..b", "main\x00", "x" * 300,
                                    "a b", "refs/heads/main.lock"])
def test_hostile_branch_names_are_refused_with_one_sentence(world, branch: str) -> None:
    client, store, tokens = world
    answer = client.post("/v1/deploy", json={"branch": branch}, headers=_as(tokens, "operate"))
    assert answer.status_code == 422 and answer.json()["detail"].startswith("branch")
    assert store.next_queued() is None


def test_a_huge_body_is_refused_before_it_is_read(world) -> None:
    client, store, tokens = world
    answer = client.post("/v1/deploy", content=b"{" + b" " * 100_000 + b"}",
                         headers={**_as(tokens, "operate"), "content-type": "application/json"})
    assert answer.status_code == 413 and store.next_queued() is None


def test_the_same_idempotency_key_gives_one_operation(world) -> None:
    client, _store, tokens = world
    headers = {**_as(tokens, "operate"), "Idempotency-Key": "abc"}
    first = client.post("/v1/deploy", json={"branch": "main"}, headers=headers)
    again = client.post("/v1/deploy", json={"branch": "main"}, headers=headers)
    assert first.status_code == again.status_code == 202
    assert first.json()["operation_id"] == again.json()["operation_id"]
    other = client.post("/v1/deploy", json={"branch": "dev"}, headers=headers)
    assert other.status_code == 422


def test_deploys_coalesce_and_other_mutations_get_409_naming_the_holder(world) -> None:
    client, store, tokens = world
    headers = _as(tokens, "operate")
    first = client.post("/v1/deploy", json={}, headers=headers).json()["operation_id"]
    store.start(first, 4242)
    second = client.post("/v1/deploy", json={"branch": "a"}, headers=headers).json()
    third = client.post("/v1/deploy", json={"branch": "b"}, headers=headers).json()
    assert third["coalesced"] and third["operation_id"] == second["operation_id"]
    assert store.get(second["operation_id"]).body == {"branch": "b"}
    refused = client.post("/v1/rollback", json={"release": "previous"}, headers=headers)
    assert refused.status_code == 409 and "pid 4242" in refused.json()["detail"]


def test_a_cli_deploy_holding_the_lock_is_409_but_the_name_a_killed_one_left_is_not(
        world, tmp_path: Path) -> None:
    from vmkeeper import flock
    from vmkeeper.releases.lock import LOCK_NAME

    client, _store, tokens = world
    headers, lock = _as(tokens, "operate"), tmp_path / "releases" / LOCK_NAME
    with flock.hold(lock, "deploy", extra={"branch": "main"}):
        held = client.post("/v1/rollback", json={"release": "previous"}, headers=headers)
        assert held.status_code == 409 and "deploy since" in held.json()["detail"]
    # what a deploy killed -9 leaves: its name in the file, the lock itself free
    lock.write_text('{"pid": 4243, "what": "deploy", "since": "2026-12-01T20:00:00.000Z"}')
    assert client.post("/v1/rollback", json={"release": "previous"},
                       headers=headers).status_code == 202


def _hook(client: TestClient, body: bytes, signature: str, delivery: str = "d1"):
    return client.post("/v1/hooks/git", content=body, headers={
        "X-Hub-Signature-256": signature, "X-GitHub-Delivery": delivery,
        "content-type": "application/json"})


def test_a_signed_push_to_the_branch_deploys_once_and_a_bad_signature_is_401(world) -> None:
    client, store, _tokens = world
    body = json.dumps({"ref": "refs/heads/main", "after": "ab" * 20}).encode()
    forged = _hook(client, body, hooks.signature("other-secret-0123456789abcdef", body))
    assert forged.status_code == 401 and store.next_queued() is None
    good = _hook(client, body, hooks.signature(SECRET, body))
    assert good.status_code == 202
    op_id = good.json()["operation_id"]
    assert store.get(op_id).who == "webhook"
    store.finish(op_id, OpState.SUCCEEDED)
    replay = _hook(client, body, hooks.signature(SECRET, body))
    assert replay.status_code == 200 and "replayed" in replay.json()["detail"]
    other = json.dumps({"ref": "refs/heads/feature"}).encode()
    ignored = _hook(client, other, hooks.signature(SECRET, other), "d2")
    assert ignored.status_code == 200 and ignored.json()["deploy"] is False


def test_events_resume_after_last_event_id_with_no_gap_or_duplicate(world) -> None:
    client, store, tokens = world
    op_id = client.post("/v1/recover", headers=_as(tokens, "operate")).json()["operation_id"]
    for n in range(4):
        store.add_event(op_id, {"type": "output", "message": f"line {n}"})
    store.finish(op_id, OpState.SUCCEEDED)  # appends the result event, number 5
    stream = client.get(f"/v1/operations/{op_id}/events",
                        headers={**_as(tokens, "read"), "Last-Event-ID": "2"})
    ids = [int(line[4:]) for line in stream.text.splitlines() if line.startswith("id: ")]
    assert ids == [3, 4, 5] and "event: result" in stream.text
    record = client.get(f"/v1/operations/{op_id}", headers=_as(tokens, "read")).json()
    assert record["state"] == "succeeded"
    assert client.get("/v1/operations/nope", headers=_as(tokens, "read")).status_code == 404
