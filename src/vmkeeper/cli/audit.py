"""`vmkeeper audit verify`: check the agent's hash-chained audit log."""

from __future__ import annotations

import typer

from vmkeeper.cli.common import JsonOption, emit, state

app = typer.Typer(help="Check the agent's hash-chained audit log.", no_args_is_help=True)


@app.command("verify")
def verify(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Exit 0 when every record chains to the one before; 1 naming the first bad line."""
    from vmkeeper.agent import audit

    verdict = audit.verify(state(ctx).settings.state_dir)
    result = {"ok": verdict.ok, "records": verdict.records, "bad_line": verdict.bad_line,
              "reason": verdict.reason}
    emit(result, as_json, lambda console: console.print(
        f"audit log intact: {verdict.records} records" if verdict.ok else
        f"audit log broken at line {verdict.bad_line}: {verdict.reason}", markup=False))
    if not verdict.ok:
        raise typer.Exit(1)
