"""`vmkeeper fleet health|plan|deploy|rollback|recover|bundle|runs`: many hosts through Ansible."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from vmkeeper.cli.common import (
    JsonOption,
    emit,
    event_printer,
    internal_failure_exits,
    state,
    stderr_console,
)
from vmkeeper.errors import UsageError
from vmkeeper.settings import Settings

app = typer.Typer(help="Fleet health and health-gated rolling deploys on Ansible.",
                  no_args_is_help=True)
plan_app = typer.Typer(help="What a fleet operation would do; changes nothing.",
                       no_args_is_help=True)
app.add_typer(plan_app, name="plan")

InventoryOption = typer.Option(None, "--inventory", "-i", help="An Ansible inventory (INI or "
                               "YAML; default: fleet.inventory).")
LimitOption = typer.Option("all", "--limit", "-l", help="An Ansible host pattern.")
WavesOption = typer.Option(None, "--waves", help="Wave sizes, like 1,25%,100% "
                           "(default: fleet.waves).")


def _inventory(settings: Settings, given: Path | None) -> Path:
    inventory = given or settings.fleet.inventory
    if inventory is None:
        raise UsageError("no inventory: give -i FILE or set fleet.inventory.")
    return inventory


def _sizes(text: str | None) -> list[int | str] | None:
    from vmkeeper.fleet.waves import parse_sizes

    return parse_sizes(text) if text else None


@app.command("health")
@internal_failure_exits(3)
def health(ctx: typer.Context, inventory: Path | None = InventoryOption,
           limit: str = LimitOption, as_json: bool = JsonOption) -> None:
    """Every host's health at once. Exit code of the worst host (0 ok … 3 unknown)."""
    from vmkeeper.fleet.health import fleet_health

    settings = state(ctx).settings
    report = fleet_health(settings, _inventory(settings, inventory), pattern=limit,
                          progress=event_printer(as_json))

    def human(console: Console) -> None:
        table = Table("host", "status", "release", "broken layer", "apps", "verdict",
                      box=None, pad_edge=False)
        for row in report.hosts:
            table.add_row(row.host, row.status.value, row.active_release or "-",
                          row.broken_layer or "-", str(row.apps_online or "-"),
                          escape(row.verdict))
        console.print(table)
        console.print(f"fleet: {report.status.value.upper()} ({len(report.hosts)} hosts in "
                      f"{report.seconds:.1f} s, run {report.run_id})")

    emit(report, as_json, human)
    raise typer.Exit(report.exit_code)


@plan_app.command("deploy")
def plan_deploy(ctx: typer.Context, branch: str = typer.Option(..., "--branch", "-b"),
                inventory: Path | None = InventoryOption, limit: str = LimitOption,
                waves: str | None = WavesOption, as_json: bool = JsonOption) -> None:
    """Per host: its wave, current and target release, prechecks. Changes nothing.
    Exit 1 when a precheck stops a host."""
    from vmkeeper.fleet.plan import plan_deploy as plan

    settings = state(ctx).settings
    result = plan(settings, _inventory(settings, inventory), branch, pattern=limit,
                  sizes=_sizes(waves), progress=event_printer(as_json))

    def human(console: Console) -> None:
        table = Table("wave", "host", "current", "target", "prechecks", box=None,
                      pad_edge=False)
        for row in result.hosts:
            table.add_row(str(row.wave + 1), row.host, row.current_release or "-",
                          (row.target_sha or "-")[:12],
                          escape("; ".join(row.prechecks) or "ok"))
        console.print(table)
        console.print(f"deploy {branch} in {len(result.waves)} waves; halt when "
                      f"{result.halt_after} host(s) fail; policy {result.policy}")

    emit(result, as_json, human)
    if not result.ready:
        raise typer.Exit(1)


@app.command("deploy")
def deploy(ctx: typer.Context, branch: str | None = typer.Option(None, "--branch", "-b"),
           resume: str | None = typer.Option(None, "--resume", metavar="RUN_ID",
                                             help="Continue a halted run."),
           inventory: Path | None = InventoryOption, limit: str = LimitOption,
           waves: str | None = WavesOption, as_json: bool = JsonOption) -> None:
    """Deploy in health-gated waves: canary first; halt when the threshold is reached."""
    from vmkeeper.fleet import rollout

    settings = state(ctx).settings
    roll = rollout.Rollout(_inventory(settings, inventory), progress=event_printer(as_json))
    if resume:
        record = rollout.resume(settings, roll, resume)
    elif branch:
        record = rollout.start(settings, roll, branch, pattern=limit, sizes=_sizes(waves))
    else:
        raise UsageError("give --branch B for a new run, or --resume RUN_ID.")

    def human(console: Console) -> None:
        _render_run(record, console)

    emit(record, as_json, human)
    if record.state.value != "done":
        stderr_console().print(f"[red]halted:[/red] {record.halted_reason}; resume with "
                               f"`vmkeeper fleet deploy --resume {record.run_id}`")
        raise typer.Exit(1)


def _render_run(record: object, console: Console) -> None:
    from vmkeeper.fleet.records import RunRecord

    assert isinstance(record, RunRecord)
    table = Table("wave", "host", "state", "release", "error", box=None, pad_edge=False)
    for host in record.hosts.values():
        table.add_row(str(host.wave + 1), host.host, host.state.value, host.release or "-",
                      escape(host.error or ""))
    console.print(table)
    split = ", ".join(f"{k}: {len(v)}" for k, v in record.split().items())
    console.print(f"run {record.run_id}: {record.state.value} ({split})")


def _broadcast(ctx: typer.Context, args: list[str], inventory: Path | None, limit: str,
               as_json: bool) -> None:
    from vmkeeper.fleet.health import broadcast

    settings = state(ctx).settings
    result = broadcast(settings, _inventory(settings, inventory), args, pattern=limit,
                       progress=event_printer(as_json))

    def human(console: Console) -> None:
        for row in result.hosts:
            mark = "[green]ok[/green]" if row["ok"] else "[red]failed[/red]"
            console.print(f"{mark} {row['host']} {escape(row['error'] or '')}")

    emit(result, as_json, human)
    if not result.ok:
        raise typer.Exit(1)


@app.command("rollback")
def rollback(ctx: typer.Context, inventory: Path | None = InventoryOption,
             limit: str = LimitOption, as_json: bool = JsonOption) -> None:
    """Every host back to its previous release (`vmkeeper rollback --previous` on each)."""
    _broadcast(ctx, ["rollback", "--previous", "--json"], inventory, limit, as_json)


@app.command("recover")
def recover(ctx: typer.Context, inventory: Path | None = InventoryOption,
            limit: str = LimitOption, as_json: bool = JsonOption) -> None:
    """The 503 decision tree on every host."""
    _broadcast(ctx, ["recover", "--json"], inventory, limit, as_json)


@app.command("bundle")
def bundle(ctx: typer.Context, inventory: Path | None = InventoryOption,
           limit: str = LimitOption, as_json: bool = JsonOption) -> None:
    """A redacted support bundle on every host; each host's path reported."""
    _broadcast(ctx, ["bundle", "--json"], inventory, limit, as_json)


@app.command("runs")
def runs(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Recorded fleet runs, newest first."""
    from vmkeeper.fleet.records import list_runs

    found = list_runs(state(ctx).settings.state_dir)

    def human(console: Console) -> None:
        for record in found:
            console.print(f"{record.run_id}  {record.command} {record.branch or ''}  "
                          f"{record.state.value}  wave {record.wave + 1}/{len(record.waves)}")

    emit({"runs": found}, as_json, human)
