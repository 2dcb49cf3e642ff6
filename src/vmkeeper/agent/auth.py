"""The agent's bearer tokens: named, scoped (read < operate < admin), stored only as hashes.

A token is shown once, when it is added; ``tokens.json`` in the state directory (0600) holds
its SHA-256, never the token, so a copied state directory or a bundle gives nobody access. A
plain hash is enough: the tokens are 256 random bits, not passwords a dictionary could find.
The store is a service of its own (no FastAPI here) so the dashboard's session layer can sit on
top of :func:`authenticate` later.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from vmkeeper import flock
from vmkeeper.atomic import atomic_file
from vmkeeper.errors import InputError
from vmkeeper.logrecord import timestamp

TOKENS_FILE = "tokens.json"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


class Scope(str, Enum):
    READ = "read"
    OPERATE = "operate"  # deploy, rollback, recover, media
    ADMIN = "admin"  # tokens, settings

    def allows(self, needed: Scope) -> bool:
        order = (Scope.READ, Scope.OPERATE, Scope.ADMIN)
        return order.index(self) >= order.index(needed)


@dataclass(frozen=True)
class TokenInfo:
    name: str
    scope: Scope
    created_at: str


@dataclass(frozen=True)
class NewToken:
    name: str
    scope: Scope
    token: str  # shown once


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _load(state_dir: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads((state_dir / TOKENS_FILE).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as error:
        raise InputError(f"The token store {state_dir / TOKENS_FILE} cannot be read ({error}); "
                         "restore it from a backup, or remove it and add the tokens again."
                         ) from None
    return {str(k): dict(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _save(state_dir: Path, data: dict[str, dict[str, str]]) -> None:
    with atomic_file(state_dir / TOKENS_FILE) as handle:
        handle.write(json.dumps(data, indent=1, sort_keys=True).encode())


def add(state_dir: Path, name: str, scope: Scope) -> NewToken:
    """Create a token; raises InputError for a bad or taken name."""
    if not _NAME.fullmatch(name):
        raise InputError("A token name is 1-64 letters, digits, '.', '_' or '-', starting with a "
                         "letter or digit; choose another name.")
    state_dir.mkdir(parents=True, exist_ok=True)
    with flock.hold(state_dir / "tokens.lock", "token change", wait_s=10):
        data = _load(state_dir)
        if name in data:
            raise InputError(f"A token named {name} exists; revoke it first or choose another "
                             "name.")
        token = "vmk_" + secrets.token_urlsafe(32)
        data[name] = {"scope": scope.value, "sha256": _digest(token), "created_at": timestamp()}
        _save(state_dir, data)
    return NewToken(name, scope, token)


def listing(state_dir: Path) -> list[TokenInfo]:
    return [TokenInfo(name, Scope(entry["scope"]), entry.get("created_at", ""))
            for name, entry in sorted(_load(state_dir).items())]


def revoke(state_dir: Path, name: str) -> None:
    with flock.hold(state_dir / "tokens.lock", "token change", wait_s=10):
        data = _load(state_dir)
        if name not in data:
            raise InputError(f"No token is named {name}; `vmkeeper agent token list` shows "
                             "them.")
        del data[name]
        _save(state_dir, data)


def authenticate(state_dir: Path, token: str) -> TokenInfo | None:
    """The token's record, or None; compares every stored hash in constant time."""
    given = _digest(token)
    found: TokenInfo | None = None
    for name, entry in _load(state_dir).items():
        if hmac.compare_digest(given, entry.get("sha256", "")):
            found = TokenInfo(name, Scope(entry["scope"]), entry.get("created_at", ""))
    return found
