from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmkeeper.agent import auth, hooks
from vmkeeper.errors import InputError

SECRET = "s" * 8 + "0123456789abcdef0123456789abcdef"


def test_a_token_is_stored_hashed_and_authenticates_with_its_scope(tmp_path: Path) -> None:
    new = auth.add(tmp_path, "ci", auth.Scope.OPERATE)
    assert new.token not in (tmp_path / auth.TOKENS_FILE).read_text()
    found = auth.authenticate(tmp_path, new.token)
    assert found is not None and found.name == "ci" and found.scope is auth.Scope.OPERATE
    assert auth.authenticate(tmp_path, new.token + "x") is None
    assert found.scope.allows(auth.Scope.READ) and not found.scope.allows(auth.Scope.ADMIN)


def test_revoked_tokens_stop_working_and_names_are_checked(tmp_path: Path) -> None:
    new = auth.add(tmp_path, "ci", auth.Scope.READ)
    with pytest.raises(InputError, match="exists"):
        auth.add(tmp_path, "ci", auth.Scope.READ)
    for bad in ("-rf", "../x", "a\x00b", ""):
        with pytest.raises(InputError, match="token name"):
            auth.add(tmp_path, bad, auth.Scope.READ)
    auth.revoke(tmp_path, "ci")
    assert auth.authenticate(tmp_path, new.token) is None
    assert auth.listing(tmp_path) == []
    with pytest.raises(InputError, match="No token"):
        auth.revoke(tmp_path, "ci")


def _push(ref: str, after: str = "ab" * 20) -> bytes:
    return json.dumps({"ref": ref, "after": after}).encode()


def test_a_github_signature_is_checked_against_the_raw_body() -> None:
    body = _push("refs/heads/main")
    hooks.verify({"x-hub-signature-256": hooks.signature(SECRET, body)}, body, SECRET)
    with pytest.raises(hooks.BadSignature):
        hooks.verify({"x-hub-signature-256": hooks.signature(SECRET, body)}, body + b" ", SECRET)
    with pytest.raises(hooks.BadSignature):
        hooks.verify({"x-hub-signature-256": hooks.signature("other" * 8, body)}, body, SECRET)
    with pytest.raises(hooks.BadSignature):
        hooks.verify({}, body, SECRET)


def test_a_gitlab_token_is_compared() -> None:
    hooks.verify({"x-gitlab-token": SECRET}, b"{}", SECRET)
    with pytest.raises(hooks.BadSignature):
        hooks.verify({"x-gitlab-token": SECRET[:-1]}, b"{}", SECRET)


def test_only_the_configured_branch_deploys() -> None:
    headers = {"x-github-delivery": "d1"}
    assert hooks.parse(headers, _push("refs/heads/main"), "main").deploys
    assert not hooks.parse(headers, _push("refs/heads/feature"), "main").deploys
    assert not hooks.parse(headers, _push("refs/tags/main"), "main").deploys
    assert not hooks.parse(headers, _push("refs/heads/main", "0" * 40), "main").deploys
    assert not hooks.parse(headers, b'{"zen": "ping"}', "main").deploys
    with pytest.raises(InputError):
        hooks.parse(headers, b"\x00not json", "main")
