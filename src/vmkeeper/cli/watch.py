"""`vmkeeper watch [--once]` and `vmkeeper incidents [--json]`: the self-healing loop."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from vmkeeper.cli.common import JsonOption, emit, escape, state

if TYPE_CHECKING:
    from rich.console import Console


def _when(at: float | None) -> str:
    return "-" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def watch(
    ctx: typer.Context,
    once: bool = typer.Option(False, "--once", help="One cycle, then exit (for cron and "
                              "tests; the hysteresis state is kept between runs)."),
) -> None:
    """Watch the VM and heal it: detect, recover within a budget, alert, keep the evidence."""
    from vmkeeper import telemetry
    from vmkeeper.watch.service import build_watcher

    settings = state(ctx).settings
    telemetry.start(settings, "vmkeeper-watch")  # on a change, else at its period; never in the way
    watcher = build_watcher(settings)
    if not once:
        watcher.run()
        return
    decision = watcher.cycle()
    telemetry.shutdown()  # --once is a one-shot command: a flush of at most 2 s
    after = watcher.store.load_state()
    from vmkeeper.cli.common import stdout_console

    stdout_console().print(f"{after.phase.value}: {decision.value}"
                           + (f" (incident {after.incident})" if after.incident else ""))


def incidents(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Every incident the watcher opened: diagnosis, actions, evidence, time to recover."""
    from vmkeeper.watch.service import incidents as list_incidents

    found = list_incidents(state(ctx).settings)

    def human(console: Console) -> None:
        from rich.table import Table

        if not found:
            console.print("no incidents")
            return
        table = Table("id", "state", "opened", "resolved", "recovered in", "actions",
                      box=None, pad_edge=False)
        table.add_column("diagnosis", no_wrap=True, overflow="ellipsis", max_width=50)
        for incident in reversed(found):
            took = ("-" if incident.seconds_to_recover is None
                    else f"{incident.seconds_to_recover:.0f} s")
            table.add_row(incident.id, incident.state, _when(incident.opened_at),
                          _when(incident.resolved_at), took, str(len(incident.actions)),
                          escape(incident.diagnosis))
        console.print(table)

    emit({"incidents": found}, as_json, human)
