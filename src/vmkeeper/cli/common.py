"""What every command shares: the loaded settings, JSON or human output, exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from vmkeeper import progress
from vmkeeper.jsonable import to_jsonable
from vmkeeper.settings import LoadedSettings, Settings, load_settings

JsonOption = typer.Option(False, "--json", help="Print one JSON object on stdout, nothing else.")


@dataclass
class CliState:
    config_path: Path | None = None
    flags: dict[str, str] = field(default_factory=dict)
    _loaded: LoadedSettings | None = None

    @property
    def loaded(self) -> LoadedSettings:
        if self._loaded is None:
            self._loaded = load_settings(self.config_path, flags=self.flags)
        return self._loaded

    @property
    def settings(self) -> Settings:
        return self.loaded.settings


def state(ctx: typer.Context) -> CliState:
    root = ctx.find_root()
    if not isinstance(root.obj, CliState):
        root.obj = CliState()
    return root.obj


def stdout_console() -> Console:
    return Console(highlight=False, soft_wrap=True)


def stderr_console() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(value: Any) -> None:
    sys.stdout.write(json.dumps(to_jsonable(value), indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def emit(result: Any, as_json: bool, human: Callable[[Console], None]) -> None:
    """Render ``result`` as one JSON object, or call ``human`` with a console."""
    if as_json:
        print_json(result)
    else:
        human(stdout_console())


def progress_printer(as_json: bool) -> Callable[[str], None]:
    """A progress callback for services: lines on stderr, silent under --json."""
    if as_json:
        return lambda _message: None
    console = stderr_console()
    return lambda message: console.print(f"[dim]…[/dim] {message}")


def event_printer(as_json: bool) -> progress.Progress:
    """The same lines for services that report ProgressEvents: each event's message."""
    if as_json:
        return progress.silent
    console = stderr_console()
    return lambda event: console.print(f"[dim]…[/dim] {event.message}")
