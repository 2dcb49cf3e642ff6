"""`vmkeeper media serve | submit KEY [--wait] | jobs | breaker`: the reverse-video job service.

``serve`` runs the service; the other three are its clients over loopback HTTP with the token
from the settings, so they show what the running service sees.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer

from vmkeeper.cli.common import JsonOption, emit, state
from vmkeeper.errors import VmkeeperError

if TYPE_CHECKING:
    from rich.console import Console

    from vmkeeper.agent.client import MediaClient


def _client(settings: Any) -> MediaClient:
    # httpx only for the service's clients: `media probe` and `media reverse` load this module.
    from vmkeeper.agent.client import MediaClient

    return MediaClient.from_settings(settings)


_FINISHED = {"done", "failed", "rejected"}
_POLL_S = 0.5


def serve(
    ctx: typer.Context,
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535,
        help="Listen on this loopback port (default: apps.media.port)."),
) -> None:
    """Run the reverse-video service on loopback until stopped (SIGINT or SIGTERM)."""
    from vmkeeper.agent.server import serve as run_service  # uvicorn only when serving

    run_service(state(ctx).settings, port)


def _when(stamp: Any) -> str:
    if not isinstance(stamp, (int, float)):
        return "-"
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _job_line(job: dict[str, Any]) -> str:
    where = f" (position {job['position']})" if job.get("position") else ""
    line = f"{job['id']} {job['key']}: {job['state']}{where}"
    if job.get("output"):
        line += f" -> {job['output']}"
    if job.get("reason"):
        line += f" [{job['reason']}] {job.get('error') or ''}"
    return line


def submit(
    ctx: typer.Context,
    key: str = typer.Argument(..., help="Storage key: a path relative to media.storage_root."),
    wait: bool = typer.Option(False, "--wait", help="Wait until the job has finished."),
    force: bool = typer.Option(False, "--force", help="Reverse even if the output is current."),
    as_json: bool = JsonOption,
) -> None:
    """Ask the service to reverse KEY; print the job (exit 1 if it failed, with --wait)."""
    settings = state(ctx).settings
    client = _client(settings)
    job = client.submit(key, force)
    if wait:
        # Every queued job ahead may take the whole timeout, each of its attempts.
        limit = settings.media.reverse_timeout_ms / 1000 * settings.media.max_attempts * max(
            int(job.get("position") or 1), 1) + 30
        deadline = time.monotonic() + limit
        while job["state"] not in _FINISHED:
            if time.monotonic() > deadline:
                raise VmkeeperError(f"Job {job['id']} did not finish within {limit:.0f} s; "
                                    f"see `vmkeeper media jobs`.")
            time.sleep(_POLL_S)
            job = client.job(job["id"])
    emit(job, as_json, lambda console: console.print(_job_line(job)))
    if job["state"] in ("failed", "rejected"):
        raise typer.Exit(1)


def jobs(
    ctx: typer.Context,
    state_filter: str | None = typer.Option(
        None, "--state", help="Only jobs in this state: queued, running, done, failed, rejected."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000),
    as_json: bool = JsonOption,
) -> None:
    """List jobs, newest first (the queue in the order it runs with --state queued)."""
    found = _client(state(ctx).settings).jobs(state_filter, limit)

    def human(console: Console) -> None:
        from rich.table import Table  # rich only when a table is printed (media reverse's start)

        table = Table(box=None, pad_edge=False)
        # The id is what `GET /jobs/{id}` takes: never cut it; the key may wrap instead.
        table.add_column("id", no_wrap=True, min_width=16)
        table.add_column("key", overflow="fold")
        for title in ("state", "pos", "attempts", "created", "seconds"):
            table.add_column(title)
        table.add_column("reason", overflow="fold")
        for job in found:
            seconds = job.get("seconds")
            table.add_row(job["id"], job["key"], job["state"], str(job.get("position") or ""),
                          str(job["attempts"]), _when(job.get("created_at")),
                          f"{seconds:.1f}" if isinstance(seconds, (int, float)) else "-",
                          job.get("reason") or "")
        console.print(table)

    emit({"jobs": found}, as_json, human)


def breaker(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """The FFmpeg circuit breaker: state, failure and success counts, when it closes."""
    status = _client(state(ctx).settings).breaker()

    def human(console: Console) -> None:
        console.print(
            f"breaker {status['state']}: {status['consecutive_failures']} consecutive media "
            f"failures (opens at {status['failure_threshold']}), {status['trial_successes']} "
            f"trial successes (closes at {status['success_threshold']})")
        if status.get("closes_at"):
            console.print(f"trial jobs allowed from {_when(status['closes_at'])} UTC "
                          f"(in {status['retry_after_s']:.0f} s)")

    emit(status, as_json, human)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.command("submit")(submit)
    app.command("jobs")(jobs)
    app.command("breaker")(breaker)
