"""`make demo`: bring the sandbox up and show the standard VM working, command by command.

Each step is a real `vmkeeper …` command run through the CLI, so what the demo prints is what
an operator would see.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

import httpx
from rich.console import Console
from rich.rule import Rule

from vmkeeper.cli.main import main as vmkeeper
from vmkeeper.cli.registry import GROUPS
from vmkeeper.sandbox import service
from vmkeeper.sandbox.layout import DEFAULT_BASE_PORT, Layout

console = Console(highlight=False)


def show(*argv: str) -> int:
    console.print(Rule(f"$ vmkeeper {shlex.join(argv)}", align="left", style="cyan"))
    code = vmkeeper(list(argv))
    console.print(f"[dim](exit {code})[/dim]\n")
    return code


def curl(url: str) -> None:
    console.print(Rule(f"$ curl -I {url}", align="left", style="cyan"))
    try:
        response = httpx.head(url, timeout=10)
        console.print(f"HTTP/1.1 {response.status_code} {response.reason_phrase}")
        server = response.headers.get("server")
        if server:
            console.print(f"Server: {server}")
    except httpx.HTTPError as error:
        console.print(f"[red]{error}[/red]")
    console.print()


def has(group: str) -> bool:
    return any(name == group for name, _ in GROUPS) or any(g == group for _, g in GROUPS)


def run(directory: Path, base_port: int) -> int:
    code = show("sandbox", "up", "--dir", str(directory), "--base-port", str(base_port))
    if code != 0:
        return code
    layout = Layout.at(directory, base_port)
    config = str(layout.config)
    settings = service.sandbox_settings(layout)
    curl(settings.public_url + "/")
    curl(f"http://127.0.0.1:{settings.apps.frontend.port}/")
    curl(f"http://127.0.0.1:{settings.apps.backend.port}/api/auth/me")
    for argv, group in (
        (["status"], "status"),
        (["health"], "health"),
        (["deploy"], "deploy"),
        (["releases"], "releases"),
    ):
        if has(group):
            show("--config", config, *argv)
    console.print(Rule("next", align="left"))
    console.print(
        f"The sandbox runs in {layout.dir}. Try:\n"
        f"  export VMKEEPER_CONFIG={config}\n"
        "  .venv/bin/vmkeeper config show\n"
        f"  .venv/bin/vmkeeper sandbox status --dir {directory}\n"
        f"  curl -I {settings.public_url}/\n"
        f"Take it down with: make demo-down   (or .venv/bin/vmkeeper sandbox down --dir {directory})"
    )
    return 0


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=Path(".sandbox"))
    parser.add_argument("--base-port", type=int, default=DEFAULT_BASE_PORT)
    args = parser.parse_args()
    sys.exit(run(args.dir, args.base_port))


if __name__ == "__main__":
    cli()
