"""`vmkeeper bundle [-o FILE]`: one redacted tar.gz with the evidence of an incident."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from vmkeeper.cli.common import JsonOption, emit, event_printer, state
from vmkeeper.diagnose.bundle import BundleResult
from vmkeeper.diagnose.bundle_sources import standard_bundle
from vmkeeper.errors import UsageError


def bundle(
    ctx: typer.Context,
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Archive to write (a folder gets the default name); "
        "default ./vmkeeper-bundle-<UTC stamp>.tar.gz."
    ),
    timeout: float = typer.Option(
        30.0, "--timeout", min=1.0, help="Seconds each source may take before it is skipped."
    ),
    lines: int | None = typer.Option(
        None, "--lines", "-n", min=1, help="Log lines per file (default health.log_lines)."
    ),
    force: bool = typer.Option(False, "--force", help="Replace the -o file if it exists."),
    as_json: bool = JsonOption,
) -> None:
    """Collect health, PM2, logs, OOM kills and the host into one redacted tar.gz (mode 0600)."""
    if output is not None and not force:
        _refuse_existing(output)
    result = standard_bundle(state(ctx).loaded, output=output, timeout_s=timeout,
                             log_lines=lines, progress=event_printer(as_json))
    emit(result, as_json, lambda console: _human(console, result))


def _refuse_existing(output: Path) -> None:
    # Checked before collecting (a minute of work): an earlier bundle, or any file a mistyped
    # -o names, is not replaced without --force. A folder gets a new default name inside.
    if output.is_symlink() or (output.exists() and not output.is_dir()):
        raise UsageError(f"{output} already exists: give another -o, or --force to replace it.")


def _human(console: Console, result: BundleResult) -> None:
    for file in result.files:
        redacted = f", {file.redactions} redacted" if file.redactions else ""
        console.print(f"[green]collected[/green] {escape(file.name)} "
                      f"[dim]({file.bytes} bytes{redacted})[/dim]")
    for skipped in result.skipped:
        console.print(f"[yellow]skipped[/yellow] {escape(skipped.source)}: "
                      f"{escape(skipped.reason)}")
    console.print(f"wrote [bold]{escape(str(result.path))}[/bold] ({result.bytes} bytes, "
                  f"{len(result.files)} files, {len(result.skipped)} skipped) in "
                  f"{result.seconds:.1f} s. Every file is redacted; still check it before "
                  "sharing: `tar -xzf` and `vmkeeper redact --check`.")
