"""Who may call the agent: the bearer token of a request, checked against the scope a route
needs (401 without a valid token, 403 with too narrow a scope). The /v1 routes, the media
routes the agent mounts and the diagnostic reads all admit through here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Request

from vmkeeper.agent import auth
from vmkeeper.dashboard.session import session_token


def admit(request: Request, authorization: str | None, needed: str) -> auth.TokenInfo:
    """The token of the ``Authorization`` header if its scope covers ``needed``; else an
    HTTPException 401 (no valid token) or 403 (too narrow a scope)."""
    scope = auth.Scope(needed)
    kind, _sep, given = (authorization or "").partition(" ")
    state_dir = request.app.state.settings.state_dir
    found = auth.authenticate(state_dir, given.strip()) if kind.lower() == "bearer" else None
    if found is None and not authorization and request.method == "GET":
        # The dashboard's session cookie admits reads (its operation page streams the events);
        # never a /v1 mutation: those would need a CSRF token, and the dashboard's forms have it.
        found = session_token(request)
    if found is None:
        raise HTTPException(401, "A valid bearer token is required; `vmkeeper agent token "
                            "add` creates one.", {"WWW-Authenticate": "Bearer"})
    if not found.scope.allows(scope):
        raise HTTPException(403, f"The token {found.name} has scope {found.scope.value}; "
                            f"this needs {scope.value}.")
    request.state.who = found.name
    return found


def require(scope: auth.Scope) -> Callable[..., auth.TokenInfo]:
    """The dependency that admits a bearer token of ``scope`` or above (401, 403 otherwise)."""
    def check(request: Request,
              authorization: Annotated[str | None, Header()] = None) -> auth.TokenInfo:
        return admit(request, authorization, scope.value)
    return check


Read = Annotated[auth.TokenInfo, Depends(require(auth.Scope.READ))]
Operate = Annotated[auth.TokenInfo, Depends(require(auth.Scope.OPERATE))]
