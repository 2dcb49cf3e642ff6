"""`vmkeeper deploy`, `vmkeeper releases`, `vmkeeper rollback`."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import typer
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from vmkeeper import progress as progress_events
from vmkeeper import telemetry
from vmkeeper.cli.common import JsonOption, emit, state, stderr_console
from vmkeeper.progress import Phase, ProgressEvent
from vmkeeper.releases import deploy as deploy_service
from vmkeeper.releases import rollback as rollback_service
from vmkeeper.releases.results import (
    STEP_TITLES,
    STEPS,
    DeployResult,
    ReleasesReport,
    RollbackResult,
)

WaitOption = typer.Option(
    0.0, "--wait", metavar="SECONDS", min=0,
    help="If another deploy or rollback runs, wait up to this long for it instead of refusing.",
)


@contextlib.contextmanager
def _live_steps(enabled: bool) -> Iterator[progress_events.Progress]:
    """Each step on stderr with a spinner and its elapsed time while it runs."""
    if not enabled:
        yield progress_events.silent
        return
    progress = Progress(
        SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
        console=stderr_console(), transient=False,
    )
    tasks: dict[str, TaskID] = {}

    def show(event: ProgressEvent) -> None:
        if event.step is None:
            return
        label = f"{event.index}/{len(STEPS)} {STEP_TITLES.get(event.step, event.step)}"
        if event.phase is Phase.STARTED:
            tasks[event.step] = progress.add_task(label, total=1)
            return
        task = tasks.get(event.step)
        if task is None or event.phase not in (Phase.DONE, Phase.FAILED):
            return
        done = event.phase is Phase.DONE
        mark = "[green]✓[/green]" if done else "[red]✗[/red]"
        detail = f" [dim]{event.message}[/dim]" if event.message and done else ""
        progress.update(task, description=f"{mark} {label} ({event.seconds or 0:.1f} s){detail}",
                        completed=1)
        progress.stop_task(task)

    with progress:
        yield show


def _render_deploy(result: DeployResult, console: Console) -> None:
    if result.dry_run:
        console.print(f"[bold]Dry run[/bold]: deploy {result.branch} "
                      f"({(result.sha or '?')[:12]}) as {result.release}; nothing will change.")
        for number, step in enumerate(result.plan, 1):
            console.print(f"{number}. {step.title}")
            for command in [*step.commands, *step.paths]:
                console.print(f"     {command}", markup=False)
        for note in result.notes:
            console.print(f"[yellow]note:[/yellow] {note}", markup=True)
        return
    for note in result.notes:
        console.print(f"note: {note}", markup=False)
    if result.cleaned:
        console.print(f"cleaned up: {', '.join(result.cleaned)}")
    if result.ok:
        console.print(f"[green]deployed[/green] {result.release} (was {result.previous or '-'}) "
                      f"in {result.seconds:.1f} s; pruned: {', '.join(result.pruned) or 'nothing'}")
    if result.failed_requests is not None:
        console.print(f"requests through the proxy during the switch: {result.failed_requests} "
                      f"failed, longest gap {result.longest_gap_s or 0:.2f} s")
    console.print(f"active release: {result.active or '-'}")


def deploy(
    ctx: typer.Context,
    branch: str | None = typer.Option(
        None, "--branch", "-b", help="Branch to deploy (default: workspace.branch)."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the plan; change nothing."),
    wait: float = WaitOption,
    as_json: bool = JsonOption,
) -> None:
    """Deploy the frontend as a new immutable release (the runbook's eight steps)."""
    settings = state(ctx).settings
    with telemetry.operation(settings, "deploy", **{"vmkeeper.dry_run": dry_run}) as handle, \
            _live_steps(not as_json and not dry_run) as progress:
        result = deploy_service.deploy(
            settings, branch=branch, dry_run=dry_run, wait_s=wait,
            progress=telemetry.steps(progress))
        if handle is not None:
            handle.record_result("deploy", result)
    emit(result, as_json, lambda console: _render_deploy(result, console))
    if not result.ok:
        stderr_console().print(f"[red]error:[/red] {result.error}", highlight=False)
        raise typer.Exit(1)


def _render_releases(report: ReleasesReport, console: Console) -> None:
    # The id already holds the UTC time and the short sha; an 80-column terminal fits the rest.
    table = Table(box=None, pad_edge=False)
    table.add_column("")
    table.add_column("id", no_wrap=True, min_width=29)
    for column in ("size", "state", "dump"):
        table.add_column(column, no_wrap=True)
    for row in report.releases:
        size = f"{row.size_bytes / 1024 / 1024:.0f} MB" if row.size_bytes is not None else "-"
        table.add_row("*" if row.active else "", row.id, size,
                      row.state + ("" if row.has_build else " (no build)"),
                      "saved" if row.in_dump else "")
    console.print(table)
    console.print(f"active: {report.active or '-'}   (* = PM2's frontend-dev cwd)")
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/yellow] {warning}")


def releases(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """List retained releases, newest first; mark the active one."""
    report = rollback_service.list_releases(state(ctx).settings)
    emit(report, as_json, lambda console: _render_releases(report, console))


def rollback(
    ctx: typer.Context,
    release_id: str | None = typer.Argument(
        None, metavar="[RELEASE_ID]", help="A release id as `vmkeeper releases` lists it."),
    previous: bool = typer.Option(False, "--previous", help="The release before the active one."),
    wait: float = WaitOption,
    as_json: bool = JsonOption,
) -> None:
    """Start frontend-dev from a retained release (the runbook's manual rollback, health-gated)."""
    settings = state(ctx).settings
    with telemetry.operation(settings, "rollback") as handle:
        result: RollbackResult = rollback_service.rollback(
            settings, release_id, previous=previous, wait_s=wait)
        if handle is not None:
            handle.record_result("rollback", result)

    def human(console: Console) -> None:
        if result.ok:
            console.print(f"[green]rolled back[/green] to {result.target} "
                          f"(was {result.previous or '-'}) in {result.seconds:.1f} s")
        for note in result.notes:
            console.print(f"[yellow]note:[/yellow] {note}")
        if result.failed_requests is not None:
            console.print(f"requests through the proxy during the switch: "
                          f"{result.failed_requests} failed, longest gap "
                          f"{result.longest_gap_s or 0:.2f} s")
        console.print(f"active release: {result.active or '-'}")

    emit(result, as_json, human)
    if not result.ok:
        stderr_console().print(f"[red]error:[/red] {result.error}", highlight=False)
        raise typer.Exit(1)
