"""`vmkeeper diagnose oom`: the runbook's OOM-Kill Diagnosis as one command."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vmkeeper.cli.common import JsonOption, emit, state
from vmkeeper.diagnose.oom import diagnose_oom
from vmkeeper.diagnose.oom_model import OomReport
from vmkeeper.diagnose.oom_verdict import format_kb

app = typer.Typer(help="Find out why the VM lost its processes.", no_args_is_help=True)


def _kb(value: int | None) -> str:
    return "-" if value is None else format_kb(value)


@app.command("oom")
def oom(
    ctx: typer.Context,
    since: str | None = typer.Option(
        None, "--since", help="Start of the window, as journalctl takes it ('2026-06-12 03:00')."
    ),
    until: str | None = typer.Option(
        None, "--until", help="End of the window."
    ),
    file: str | None = typer.Option(
        None, "--file", "-f", help="Read this saved log instead of the machine's ('-' = stdin)."
    ),
    dash: str | None = typer.Argument(
        None, metavar="[-]", help="'-' reads the log from stdin."
    ),
    as_json: bool = JsonOption,
) -> None:
    """OOM kills in the kernel log: victim, memory held, constraint, units, and a verdict."""
    if dash not in (None, "-"):
        raise typer.BadParameter(f"unexpected argument {dash!r}; use --file FILE or -")
    from_stdin = dash == "-" or file == "-"
    report = diagnose_oom(
        state(ctx).settings,
        since=since,
        until=until,
        file=Path(file) if file and file != "-" else None,
        stdin=sys.stdin if from_stdin else None,
    )
    emit(report, as_json, lambda console: _human(console, report))


def _human(console: Console, report: OomReport) -> None:
    for skipped in report.skipped_sources:
        console.print(f"[dim]skipped {skipped}[/dim]")
    console.print(f"[dim]read {report.source} ({report.lines_read} lines)[/dim]")
    if not report.events:
        console.print("no OOM kill found")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("time", "victim", "pid", "rss", "total-vm", "constraint", "invoker", "units"):
        table.add_column(column, no_wrap=column in ("time", "victim", "pid", "rss"))
    for event in report.events:
        victim = event.victim
        table.add_row(
            event.time or "-",
            victim.name,
            str(victim.pid),
            _kb(victim.rss_kb),
            _kb(victim.total_vm_kb),
            event.constraint or "-",
            event.invoker.name if event.invoker else "-",
            ", ".join(event.units) or "-",
        )
    console.print(table)
    if report.events_dropped:
        console.print(f"[yellow]{report.events_dropped} further kills not listed[/yellow]")
    for event in report.events:
        console.print(event.verdict)
