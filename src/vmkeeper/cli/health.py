"""`vmkeeper status | health | recover | logs | doctor`: the runbook's checks and its 503 path."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vmkeeper.cli.common import (
    JsonOption,
    emit,
    escape,
    event_printer,
    internal_failure_exits,
    state,
)
from vmkeeper.errors import UsageError
from vmkeeper.health.model import Check, Status
from vmkeeper.health.service import run_health, run_status

if TYPE_CHECKING:
    from rich.console import Console

_COLOURS = {Status.OK: "green", Status.WARN: "yellow", Status.CRITICAL: "red",
            Status.UNKNOWN: "magenta"}


def _checks_table(console: Console, checks: list[Check]) -> None:
    from rich.table import Table

    table = Table("status", "check", "observed", box=None, pad_edge=False)
    for check in checks:
        colour = _COLOURS[check.status]
        table.add_row(f"[{colour}]{check.status.value}[/{colour}]", escape(check.name),
                      escape(check.summary))
    console.print(table)


def status(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """The topology and each PM2 app's state (like `pm2 status`, with ports and the release)."""
    report = run_status(state(ctx).settings)

    def human(console: Console) -> None:
        from rich.table import Table

        console.print(f"public {report.public_url} → Apache :{report.proxy_port} → apps "
                      f"(supervisor: {report.supervisor}, PM2 daemon pid "
                      f"{report.pm2_daemon_pid or '-'})")
        table = Table("app", "status", "pid", "ports", "restarts", "memory", "cwd",
                      box=None, pad_edge=False)
        for app in report.apps:
            memory = f"{app.memory_bytes / 1024**2:.0f} MiB" if app.memory_bytes else "-"
            cwd = app.cwd or "-"
            if app.release:
                cwd += f"  (release {app.release})"
            table.add_row(app.name, app.status, str(app.pid or "-"),
                          ",".join(map(str, app.ports)) or "-", str(app.restarts), memory,
                          escape(cwd))
        console.print(table)
        if report.note:
            console.print(f"[yellow]{report.note}[/yellow]")

    emit(report, as_json, human)


@internal_failure_exits(Status.UNKNOWN.exit_code)
def health(
    ctx: typer.Context,
    as_json: bool = JsonOption,
    prometheus: Path | None = typer.Option(
        None, "--prometheus", help="Also write the results here in the Prometheus text format "
        "(atomically, for node_exporter's textfile collector)."
    ),
) -> None:
    """Every runbook check, concurrently. Exit 0 ok, 1 warn, 2 critical, 3 unknown."""
    if prometheus is not None:
        _check_prometheus_path(prometheus)
    from vmkeeper import telemetry

    settings = state(ctx).settings
    with telemetry.operation(settings, "health"):  # run_health records the families
        report = run_health(settings, prometheus=prometheus)

    def human(console: Console) -> None:
        colour = _COLOURS[report.status]
        console.print(f"[{colour}]{report.status.value.upper()}[/{colour}] "
                      f"{escape(report.verdict)}")
        _checks_table(console, report.checks)
        console.print(f"[dim]{len(report.checks)} checks in {report.seconds:.2f} s[/dim]")

    emit(report, as_json, human)
    raise typer.Exit(report.exit_code)


def _check_prometheus_path(path: Path) -> None:
    # Refused before any check runs; creating the folder (as root, from a typo) is not ours to do.
    if path.is_dir():
        raise UsageError(f"--prometheus {path} is a folder: name the .prom file to write in it.")
    if not path.parent.is_dir():
        raise UsageError(f"--prometheus: the folder {path.parent} does not exist: create it "
                         "(node_exporter's textfile directory) or give another path.")


def recover(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    as_json: bool = JsonOption,
) -> None:
    """The runbook's 503 decision tree, acted on and verified. Exit 0 healed or healthy."""
    from vmkeeper import telemetry
    from vmkeeper.recover import recover as run_recover  # each command imports only its service

    settings = state(ctx).settings
    with telemetry.operation(settings, "recover", **{"vmkeeper.dry_run": dry_run}) as handle:
        result = run_recover(settings, dry_run=dry_run,
                             progress=telemetry.steps(event_printer(as_json)))
        if handle is not None:
            handle.record_result("recover", result)

    def human(console: Console) -> None:
        console.print(escape(result.diagnosis))
        for note in result.notes:
            console.print(f"[yellow]note:[/yellow] {escape(note)}")
        for action in result.actions:
            mark = {"planned": "[cyan]plan[/cyan]", "done": "[green]done[/green]",
                    "failed": "[red]failed[/red]"}[action.outcome]
            console.print(f"{mark} {escape(action.command)}"
                          + (f" ({action.seconds:.1f} s)" if action.seconds else ""))
            if action.outcome == "failed" and action.output:
                console.print(f"[dim]{escape(action.output)}[/dim]")
        if result.health_after is not None and not result.dry_run:
            console.print(f"after: {escape(result.health_after.verdict)}")
        verdict = ("dry run: nothing changed" if result.dry_run else
                   "healthy" if result.ok else "NOT healed")
        console.print(f"[bold]{verdict}[/bold] in {result.seconds:.1f} s")

    emit(result, as_json, human)
    raise typer.Exit(0 if result.ok or (result.dry_run and result.plan) else 1)


def logs(
    ctx: typer.Context,
    app: str | None = typer.Argument(
        None, help="One PM2 app (or 'apache'); every app and Apache's error log if omitted."
    ),
    lines: int | None = typer.Option(
        None, "--lines", "-n", min=1, help="Lines per log file (default health.log_lines)."
    ),
    as_json: bool = JsonOption,
) -> None:
    """The last lines of each log, redacted; never tails forever (unlike `pm2 logs`)."""
    from vmkeeper.health.logs import read_logs

    report = read_logs(state(ctx).settings, app, lines)

    def human(console: Console) -> None:
        for source in report.sources:
            if not source.found:
                console.print(f"[dim]== {source.source}: {source.path} (absent)[/dim]")
                continue
            console.print(f"[bold]== {source.source}[/bold] [dim]{source.path}[/dim]")
            for line in report.lines:
                if line.source == source.source:
                    console.print(escape(line.text))

    emit(report, as_json, human)


@internal_failure_exits(Status.UNKNOWN.exit_code)
def doctor(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Node, PM2, FFmpeg, Apache and paths checked. Exit 0 ok, 1 warn, 2 critical, 3 unknown."""
    from vmkeeper.health.doctor import run_doctor  # health, run every minute, needs none of it

    report = run_doctor(state(ctx).settings)

    def human(console: Console) -> None:
        _checks_table(console, report.checks)

    emit(report, as_json, human)
    raise typer.Exit(report.exit_code)
