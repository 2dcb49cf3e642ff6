"""`vmkeeper sandbox up | down | status`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from vmkeeper.cli.common import JsonOption, emit, event_printer
from vmkeeper.sandbox import service
from vmkeeper.sandbox.layout import DEFAULT_BASE_PORT, DEFAULT_DIR, Layout

app = typer.Typer(help="The standard VM replicated on loopback ports, for demos and tests.",
                  no_args_is_help=True)

DirOption = typer.Option(DEFAULT_DIR, "--dir", help="The sandbox folder.")
BaseOption = typer.Option(
    None, "--base-port",
    help=f"Added to every VM port: {DEFAULT_BASE_PORT} (the default for a new sandbox) puts "
    "Apache on 10080, the frontend on 13001. An existing sandbox keeps its own.",
)


def _render(result: service.SandboxStatus, console: Console) -> None:
    table = Table("app", "status", "pid", "port", box=None, pad_edge=False)
    for app in result.apps:
        table.add_row(app.name, app.status, str(app.pid or "-"), str(app.port or "-"))
    console.print(table)
    console.print(f"PM2 daemon: {result.pm2_daemon_pid or 'not running'}    "
                  f"Apache: {result.apache_pid or 'not running'}    "
                  f"active release: {result.active_release or '-'}")
    for name, url in result.urls.items():
        console.print(f"{name:>10}: {url}")
    console.print(f"    config: {result.config}  (vmkeeper --config {result.config} …)")


def _payload(result: service.SandboxStatus) -> dict[str, object]:
    return {
        "dir": result.dir,
        "config": result.config,
        "apps": result.apps,
        "urls": result.urls,
        "apache_pid": result.apache_pid,
        "pm2_daemon_pid": result.pm2_daemon_pid,
        "active_release": result.active_release,
        "steps": result.steps,
    }


@app.command("up")
def up(
    dir: Path = DirOption, base_port: int | None = BaseOption,
    as_json: bool = JsonOption,
    watch: bool = typer.Option(True, "--watch/--no-watch", help="Also start `vmkeeper watch` "
                               "outside PM2 (the self-healing loop)."),
) -> None:
    """Build (or resume) the sandbox: workspace, PM2 apps, Apache, a first deploy."""
    base = base_port if base_port is not None else service.base_port_of(dir)
    result = service.up(Layout.at(dir, base), event_printer(as_json), watch=watch)
    emit(_payload(result), as_json, lambda console: _render(result, console))


@app.command("status")
def status(dir: Path = DirOption, as_json: bool = JsonOption) -> None:
    """Each part of the sandbox: PM2 apps, Apache, URLs."""
    layout = _existing_layout(dir)
    result = service.status(layout)
    emit(_payload(result), as_json, lambda console: _render(result, console))
    if not result.running:
        raise typer.Exit(1)


@app.command("down")
def down(dir: Path = DirOption, as_json: bool = JsonOption) -> None:
    """Stop everything the sandbox started (PM2 daemon and apps, Apache)."""
    layout = _existing_layout(dir)
    killed = service.down(layout, event_printer(as_json))
    payload = {"dir": layout.dir, "stopped": True, "killed_leftovers": killed}
    emit(payload, as_json, lambda console: console.print(
        f"sandbox in {layout.dir} is down" + (f" (killed leftovers {killed})" if killed else "")))


def _existing_layout(dir: Path) -> Layout:
    return Layout.at(dir, service.base_port_of(dir))
