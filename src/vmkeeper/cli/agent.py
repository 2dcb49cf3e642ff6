"""`vmkeeper agent serve | token add|list|revoke | install-unit`: the HTTP command API."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vmkeeper.cli.common import JsonOption, emit, state

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(help="The HTTP command API: deploys on push, scoped tokens, live output.",
                  no_args_is_help=True)
token_app = typer.Typer(help="The agent's bearer tokens (shown once, stored hashed).",
                        no_args_is_help=True)
app.add_typer(token_app, name="token")


@token_app.command("add")
def token_add(ctx: typer.Context, name: str,
              scope: str = typer.Option(..., "--scope", help="read, operate or admin."),
              as_json: bool = JsonOption) -> None:
    """Create a token and print it once: it is stored only as a hash."""
    from vmkeeper.agent import auth
    from vmkeeper.errors import InputError

    try:
        chosen = auth.Scope(scope)
    except ValueError:
        raise InputError(f"The scope {scope!r} is not one of read, operate, admin; "
                         "pass --scope read|operate|admin.") from None
    new = auth.add(state(ctx).settings.state_dir, name, chosen)
    result = {"name": new.name, "scope": new.scope.value, "token": new.token}

    def human(console: Console) -> None:
        console.print(f"token {new.name} ({new.scope.value}): {new.token}", markup=False)
        console.print("It is shown only now; store it where its user keeps secrets.")

    emit(result, as_json, human)


@token_app.command("list")
def token_list(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Every token's name, scope and creation time (never the token)."""
    from vmkeeper.agent import auth

    tokens = auth.listing(state(ctx).settings.state_dir)
    result = {"tokens": [{"name": t.name, "scope": t.scope.value, "created_at": t.created_at}
                         for t in tokens]}

    def human(console: Console) -> None:
        for t in tokens:
            console.print(f"{t.name}  {t.scope.value}  {t.created_at}", markup=False)
        if not tokens:
            console.print("no tokens; `vmkeeper agent token add NAME --scope read` adds one")

    emit(result, as_json, human)


@token_app.command("revoke")
def token_revoke(ctx: typer.Context, name: str, as_json: bool = JsonOption) -> None:
    """Remove a token: requests carrying it are refused (401) from now on."""
    from vmkeeper.agent import auth

    auth.revoke(state(ctx).settings.state_dir, name)
    emit({"name": name, "revoked": True}, as_json,
         lambda console: console.print(f"token {name} revoked", markup=False))


UNIT_FILE = "vmkeeper-agent.service"  # shipped in the package: vmkeeper/units/
_UNIT_EXE = "/usr/local/bin/vmkeeper"  # the template's ExecStart, replaced by this machine's


def unit_text(exe: str) -> str:
    """The shipped unit with ``exe`` as the program it starts."""
    from importlib.resources import files

    template = files("vmkeeper").joinpath("units", UNIT_FILE).read_text(encoding="utf-8")
    return template.replace(f"ExecStart={_UNIT_EXE} ", f"ExecStart={exe} ")


def vmkeeper_program() -> str:
    """This installation's `vmkeeper` program: on PATH, beside the Python that runs it, or the
    template's default."""
    import shutil
    import sys

    beside = Path(sys.executable).with_name("vmkeeper")
    return shutil.which("vmkeeper") or (str(beside) if beside.is_file() else _UNIT_EXE)


@app.command("install-unit")
def install_unit(path: Path = typer.Option(Path("/etc/systemd/system") / UNIT_FILE,
                                           help="Where to write the unit."),
                 as_json: bool = JsonOption) -> None:
    """Write the systemd unit that runs the agent (then `systemctl enable --now` it)."""
    from vmkeeper.atomic import atomic_file

    with atomic_file(path, mode=0o644) as handle:
        handle.write(unit_text(vmkeeper_program()).encode())
    emit({"unit": str(path)}, as_json, lambda console: console.print(
        f"wrote {path}; run `sudo systemctl daemon-reload && sudo systemctl enable --now "
        f"{path.stem}`", markup=False))


@app.command("serve")
def serve(ctx: typer.Context,
          port: int | None = typer.Option(None, "--port", min=1, max=65535,
                                          help="Listen on this port (default: agent.port).")
          ) -> None:
    """Run the agent until stopped: /v1 on loopback TCP and the unix socket."""
    import json

    from vmkeeper.agent.daemon import serve as run_agent

    cli = state(ctx)
    env = {"VMKEEPER_AGENT_FLAGS": json.dumps(cli.flags)}
    if cli.config_path:
        env["VMKEEPER_CONFIG"] = str(cli.config_path)
    run_agent(cli.settings, env, port, cli.loaded)
