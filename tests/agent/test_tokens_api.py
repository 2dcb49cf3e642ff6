"""The admin scope's token routes in-process: list (never a token), add (shown once, audited),
revoke (audited; not the token making the request); read and operate tokens get 403."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from vmkeeper.agent import audit, auth
from vmkeeper.agent.api import create_app
from vmkeeper.agent.runner import Runner
from vmkeeper.agent.store import Store
from vmkeeper.settings import Settings


def _world(tmp_path: Path) -> tuple[TestClient, dict[str, str]]:
    settings = Settings.model_validate({"state_dir": tmp_path,
                                        "releases": {"root": tmp_path / "releases"}})
    store = Store(tmp_path)
    client = TestClient(create_app(settings, store, Runner(store, settings, tmp_path / "ops")))
    tokens = {scope.value: auth.add(tmp_path, scope.value, scope).token for scope in auth.Scope}
    return client, tokens


def _as(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_an_admin_adds_lists_and_revokes_tokens_and_each_change_is_audited(tmp_path: Path
                                                                          ) -> None:
    client, tokens = _world(tmp_path)
    admin = _as(tokens["admin"])
    made = client.post("/v1/tokens", json={"name": "ci", "scope": "operate"}, headers=admin)
    assert made.status_code == 201 and set(made.json()) == {"name", "scope", "token"}
    new = made.json()["token"]
    assert client.post("/v1/deploy", json={}, headers=_as(new)).status_code == 202
    listed = client.get("/v1/tokens", headers=admin)
    assert [t["name"] for t in listed.json()["tokens"]] == ["admin", "ci", "operate", "read"]
    assert new not in listed.text and "sha256" not in listed.text
    again = client.post("/v1/tokens", json={"name": "ci", "scope": "read"}, headers=admin)
    assert again.status_code == 400 and "exists" in again.json()["detail"]
    assert client.delete("/v1/tokens/ci", headers=admin).json() == {"revoked": "ci"}
    assert client.post("/v1/deploy", json={}, headers=_as(new)).status_code == 401
    assert client.delete("/v1/tokens/ci", headers=admin).status_code == 404
    lines = (tmp_path / audit.AUDIT_FILE).read_text().splitlines()
    kinds = [json.loads(line)["kind"] for line in lines]
    assert kinds.count("token add") == 1 and kinds.count("token revoke") == 1
    assert audit.verify(tmp_path).ok


def test_only_admin_may_and_no_token_revokes_itself(tmp_path: Path) -> None:
    client, tokens = _world(tmp_path)
    for scope in ("read", "operate"):
        answer = client.post("/v1/tokens", json={"name": "x", "scope": "admin"},
                             headers=_as(tokens[scope]))
        assert answer.status_code == 403 and "needs admin" in answer.json()["detail"]
        assert client.get("/v1/tokens", headers=_as(tokens[scope])).status_code == 403
    itself = client.delete("/v1/tokens/admin", headers=_as(tokens["admin"]))
    assert itself.status_code == 409 and "making this request" in itself.json()["detail"]
    bad = client.post("/v1/tokens", json={"name": "-x", "scope": "root"},
                      headers=_as(tokens["admin"]))
    assert bad.status_code == 422 and "Traceback" not in bad.text


def test_an_admin_reads_the_effective_settings_with_secrets_masked(tmp_path: Path) -> None:
    from vmkeeper.settings import LoadedSettings

    secret = "whsec-0123456789abcdef0123456789abcdef"
    settings = Settings.model_validate({"state_dir": tmp_path,
                                        "agent": {"webhook_secret": secret}})
    store = Store(tmp_path)
    loaded = LoadedSettings(settings, {"agent.webhook_secret": "env:VMKEEPER_AGENT_WEBHOOK_SECRET"},
                            None)
    client = TestClient(create_app(settings, store, Runner(store, settings, tmp_path / "ops"),
                                   loaded=loaded))
    tokens = {scope.value: auth.add(tmp_path, scope.value, scope).token for scope in auth.Scope}
    assert client.get("/v1/config", headers=_as(tokens["operate"])).status_code == 403
    answer = client.get("/v1/config", headers=_as(tokens["admin"]))
    assert answer.status_code == 200 and secret not in answer.text
    body = answer.json()
    assert body["settings"]["agent"]["webhook_secret"] == "***"
    assert body["sources"]["agent.webhook_secret"] == "env:VMKEEPER_AGENT_WEBHOOK_SECRET"
