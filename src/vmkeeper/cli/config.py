"""`vmkeeper config show`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from vmkeeper.cli.common import JsonOption, emit, state
from vmkeeper.settings import effective, leaf_keys

if TYPE_CHECKING:
    from rich.console import Console

app = typer.Typer(help="The effective settings and where each came from.", no_args_is_help=True)


@app.command("show")
def show(ctx: typer.Context, as_json: bool = JsonOption) -> None:
    """Print every effective setting with its source (default, file:<path>, env:<NAME>, flag)."""
    loaded = state(ctx).loaded
    result = effective(loaded)
    nested = result["settings"]

    def human(console: Console) -> None:
        from rich.table import Table

        table = Table("key", "value", "source", box=None, pad_edge=False)
        for key in leaf_keys():
            value: object = nested
            for part in key.split("."):
                value = value[part]  # type: ignore[index]
            table.add_row(key, str(value), loaded.sources[key])
        console.print(table)
        if loaded.config_file:
            console.print(f"config file: {loaded.config_file}")

    emit(result, as_json, human)
