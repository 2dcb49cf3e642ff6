"""Push webhooks from GitHub and GitLab: verified, parsed, and told whether they deploy.

GitHub signs the raw body (``X-Hub-Signature-256: sha256=<hex HMAC-SHA256>``); GitLab sends the
shared secret itself (``X-Gitlab-Token``). Both are compared in constant time, and against the
raw bytes: a body re-serialised by a JSON parser would no longer match its signature.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass

from vmkeeper.errors import InputError

MAX_BODY = 1024 * 1024  # GitHub caps payloads at 25 MB, but a push of one branch is kilobytes


class BadSignature(InputError):
    """The webhook is not from the configured git host (→ 401)."""


@dataclass(frozen=True)
class Push:
    delivery: str  # the host's delivery id: a replay carries the same one
    ref: str  # refs/heads/main
    sha: str | None
    deploys: bool  # the ref is the configured branch


def verify(headers: Mapping[str, str], body: bytes, secret: str) -> None:
    """Raise BadSignature unless the GitHub signature or the GitLab token matches ``secret``."""
    signature = headers.get("x-hub-signature-256")
    if signature is not None:
        expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        if hmac.compare_digest(signature.strip().encode(), expected.encode()):
            return
        raise BadSignature("The X-Hub-Signature-256 does not match the body signed with "
                           "agent.webhook_secret; check the secret configured in the webhook.")
    token = headers.get("x-gitlab-token")
    if token is not None:
        if hmac.compare_digest(token.encode(), secret.encode()):
            return
        raise BadSignature("The X-Gitlab-Token is not agent.webhook_secret; check the secret "
                           "configured in the webhook.")
    raise BadSignature("The webhook carries no X-Hub-Signature-256 or X-Gitlab-Token header; "
                       "configure agent.webhook_secret as the webhook's secret.")


def parse(headers: Mapping[str, str], body: bytes, branch: str) -> Push:
    """The push a verified body describes; raises InputError for a body that is not one."""
    delivery = headers.get("x-github-delivery") or headers.get("x-gitlab-event-uuid") or ""
    try:
        data = json.loads(body)
    except ValueError:
        raise InputError("The webhook body is not JSON; send the git host's push event.") from None
    if not isinstance(data, dict):
        raise InputError("The webhook body is not a JSON object; send the push event.")
    ref = data.get("ref")
    if not isinstance(ref, str):
        # A ping (GitHub's first delivery) or another event: acknowledged, nothing to deploy.
        return Push(delivery, "", None, False)
    sha = data.get("after") if isinstance(data.get("after"), str) else None
    deleted = sha is not None and set(sha) == {"0"}
    return Push(delivery, ref, sha, ref == f"refs/heads/{branch}" and not deleted)


def signature(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value GitHub would send (tests, demo, bench)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
