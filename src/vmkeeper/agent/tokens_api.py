"""The `admin` scope's routes: the agent's tokens over HTTP, as `vmkeeper agent token` does,
and its settings, as `vmkeeper config show --json` prints them.

`GET /v1/tokens` lists them (never a token), `POST /v1/tokens {name, scope}` answers the new
token once (the CLI's `--json` object), `DELETE /v1/tokens/{name}` revokes one. Each change is
an audit record; a token cannot revoke itself (the last admin locking everybody out).
`GET /v1/config`: the effective settings with their sources, secrets masked. Read-only: the
agent's settings change where they are kept (the TOML file, the unit's environment) and take
effect on its restart, as every service's do.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from vmkeeper.agent import audit, auth
from vmkeeper.agent.admission import require
from vmkeeper.jsonable import to_jsonable
from vmkeeper.settings import LoadedSettings, effective

Admin = Annotated[auth.TokenInfo, Depends(require(auth.Scope.ADMIN))]


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    scope: auth.Scope


def install(app: FastAPI, loaded: LoadedSettings) -> None:
    def state_dir(request: Request) -> Any:
        return request.app.state.settings.state_dir

    def record(request: Request, who: auth.TokenInfo, kind: str, body: dict[str, Any]) -> None:
        audit.append(state_dir(request), who=who.name, request_id=request.state.request_id,
                     operation=None, kind=kind, body=body, before=None, after=None,
                     result="done")

    @app.get("/v1/config")
    def config(_who: Admin) -> Any:
        return effective(loaded)

    @app.get("/v1/tokens")
    def tokens(request: Request, _who: Admin) -> Any:
        return {"tokens": to_jsonable(auth.listing(state_dir(request)))}

    @app.post("/v1/tokens")
    def add(request: Request, who: Admin, body: TokenBody) -> JSONResponse:
        made = auth.add(state_dir(request), body.name, body.scope)
        record(request, who, "token add", {"name": made.name, "scope": made.scope.value})
        return JSONResponse(to_jsonable(made), 201)

    @app.delete("/v1/tokens/{name}")
    def revoke(request: Request, who: Admin, name: str) -> Any:
        if name == who.name:
            raise HTTPException(409, f"The token {name} is the one making this request; revoke "
                                "it with another admin token or `vmkeeper agent token revoke`.")
        if name not in {t.name for t in auth.listing(state_dir(request))}:
            raise HTTPException(404, f"No token is named {name}; GET /v1/tokens lists them.")
        auth.revoke(state_dir(request), name)
        record(request, who, "token revoke", {"name": name})
        return {"revoked": name}
