"""Dashboard sessions: an agent token signs in once, a random session id rides in a cookie.

The token itself never sits in the browser: the cookie holds a 256-bit random id, the session
(token name, scope, CSRF token, expiry) lives in the agent's memory — an agent restart signs
everybody out, which is the safe direction. Every mutation carries the session's CSRF token in
its form; it is compared in constant time.
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from vmkeeper.agent import auth
from vmkeeper.agent.auth import Scope, TokenInfo

if TYPE_CHECKING:
    from starlette.requests import Request

COOKIE = "vmk_session"
DEFAULT_TTL_S = 8 * 3600  # one working shift; the cookie's Max-Age is the same


@dataclass(frozen=True)
class Session:
    id: str
    token_name: str
    scope: Scope
    csrf: str
    expires_at: float

    def can(self, needed: Scope) -> bool:
        return self.scope.allows(needed)


class Sessions:
    """Live sessions by id; ``now`` is injectable so tests drive expiry with a fake clock."""

    def __init__(self, state_dir: Path, ttl_s: float = DEFAULT_TTL_S,
                 now: Callable[[], float] = time.time) -> None:
        self.state_dir = state_dir
        self.ttl_s = ttl_s
        self._now = now
        self._lock = threading.Lock()
        self._by_id: dict[str, Session] = {}

    def sign_in(self, token: str) -> Session | None:
        """A new session for a valid agent token, or None."""
        info = auth.authenticate(self.state_dir, token.strip())
        if info is None:
            return None
        session = Session(secrets.token_urlsafe(32), info.name, info.scope,
                          secrets.token_urlsafe(32), self._now() + self.ttl_s)
        with self._lock:
            self._drop_expired()
            self._by_id[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        with self._lock:
            session = self._by_id.get(session_id)
            if session is None or session.expires_at <= self._now():
                self._by_id.pop(session_id, None)
                return None
        return session

    def sign_out(self, session_id: str | None) -> None:
        with self._lock:
            self._by_id.pop(session_id or "", None)

    def rotate_csrf(self, session: Session) -> Session:
        fresh = replace(session, csrf=secrets.token_urlsafe(32))
        with self._lock:
            self._by_id[session.id] = fresh
        return fresh

    def _drop_expired(self) -> None:
        now = self._now()
        for key in [k for k, s in self._by_id.items() if s.expires_at <= now]:
            del self._by_id[key]


def csrf_ok(session: Session, given: str | None) -> bool:
    return bool(given) and hmac.compare_digest(session.csrf.encode(), (given or "").encode())


def session_token(request: Request) -> TokenInfo | None:
    """The token behind the request's session cookie (the agent's :func:`admit` asks), or None."""
    sessions: Sessions | None = getattr(request.app.state, "sessions", None)
    session = sessions.get(request.cookies.get(COOKIE)) if sessions else None
    return TokenInfo(session.token_name, session.scope, "") if session else None
