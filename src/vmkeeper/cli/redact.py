"""`vmkeeper redact [FILE | -] [--check]`: a document with every secret replaced."""

from __future__ import annotations

import sys

import typer

from vmkeeper.redact import read_text, redact_document


def redact(
    source: str | None = typer.Argument(
        "-", metavar="[FILE | -]", help="dump.pm2, `pm2 jlist` output, an env file or a log."
    ),
    check: bool = typer.Option(
        False, "--check", help="List what would be redacted (kind and place, never the value); "
        "exit 1 if anything."
    ),
) -> None:
    """Write the document with every secret replaced by «redacted:<kind>»."""
    from pathlib import Path

    text = sys.stdin.read() if source in (None, "-") else read_text(Path(source))
    result = redact_document(text)
    if check:
        # Plain writes: tab-separated for `cut`/`awk`, which rich would turn into spaces.
        for finding in result.findings:
            sys.stdout.write(f"{finding.kind}\t{finding.location}\n")
        if result.findings:
            raise typer.Exit(1)
        sys.stdout.write(f"nothing to redact ({result.kind.value})\n")
        return
    sys.stdout.write(result.text)
    sys.stdout.flush()
