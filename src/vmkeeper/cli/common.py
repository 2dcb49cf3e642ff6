"""What every command shares: the loaded settings, JSON or human output, exit codes.

Importing it costs typer and nothing more: the settings (pydantic), the JSON encoder and Rich
are imported when first used, so the top-level handler in main.py can use it on every start.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import typer

from vmkeeper import progress
from vmkeeper.errors import VmkeeperError

if TYPE_CHECKING:
    from rich.console import Console

    from vmkeeper.settings import LoadedSettings, Settings

# typer 0.2x vendors click (typer._click); the base of its usage errors is found from a public
# name so this works with either layout.
ClickException: type[Exception] = next(
    base for base in typer.BadParameter.__mro__ if base.__name__ == "ClickException"
)

P = ParamSpec("P")
R = TypeVar("R")

JsonOption = typer.Option(False, "--json", help="Print one JSON object on stdout, nothing else.")


@dataclass
class CliState:
    config_path: Path | None = None
    flags: dict[str, str] = field(default_factory=dict)
    _loaded: LoadedSettings | None = None

    @property
    def loaded(self) -> LoadedSettings:
        if self._loaded is None:
            from vmkeeper.settings import load_settings

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


# Rich is imported when something is drawn for a person: `--json` runs never load it.
def stdout_console() -> Console:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def escape(text: str) -> str:
    """``text`` with Rich markup made literal (a log line may hold `[red]`)."""
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def print_json(value: Any) -> None:
    from vmkeeper.jsonable import json_text

    sys.stdout.write(json_text(value) + "\n")
    sys.stdout.flush()


class InternalFailure(Exception):
    """A command's own failure (a bug), carrying the exit code its callers read it as; the
    cause is ``__cause__``. Only the top-level handler catches it."""

    def __init__(self, exit_code: int) -> None:
        super().__init__(f"internal failure (exit {exit_code})")
        self.exit_code = exit_code


def internal_failure_exits(code: int) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """For monitoring commands (health, doctor): any failure to reach a verdict exits ``code``
    (3, "unknown", in the Nagios convention) — a crash exited 1, which a monitor reads as
    "warn", and a settings error 2, "critical"."""

    def decorate(command: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(command)
        def run(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return command(*args, **kwargs)
            except VmkeeperError as error:
                # Bad settings or a refused option: still no verdict, so "unknown" too.
                error.exit_code = code
                raise
            except (ClickException, typer.Exit, typer.Abort):
                raise
            except Exception as error:
                raise InternalFailure(code) from error

        return run

    return decorate


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
