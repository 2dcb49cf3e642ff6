"""`vmkeeper redact [FILE | -] [--check [--json]]`: a document with every secret replaced."""

from __future__ import annotations

import sys

import typer

from vmkeeper.cli.common import JsonOption, print_json


def redact(
    source: str | None = typer.Argument(
        "-", metavar="[FILE | -]", help="dump.pm2, `pm2 jlist` output, an env file or a log."
    ),
    check: bool = typer.Option(
        False, "--check", help="List what would be redacted (kind, name and places, never the "
        "value), one line per secret; exit 1 if anything."
    ),
    as_json: bool = JsonOption,
) -> None:
    """Write the document with every secret replaced by «redacted:<kind>»."""
    from pathlib import Path

    from vmkeeper.redact import group_findings, read_text, redact_document

    text = sys.stdin.read() if source in (None, "-") else read_text(Path(source))
    result = redact_document(text)
    if not check:
        if as_json:
            raise typer.BadParameter("--json goes with --check: without it the output is the "
                                     "redacted document itself.", param_hint="--json")
        sys.stdout.write(result.text)
        sys.stdout.flush()
        return
    groups = group_findings(result.findings)
    if as_json:
        print_json({"kind": result.kind.value, "count": len(result.findings), "findings": [
            {"kind": g.kind, "name": g.name, "count": g.count, "apps": g.apps,
             "places": list(g.places), "locations": list(g.locations)} for g in groups]})
    else:
        # Plain writes: tab-separated for `cut`/`awk`, which rich would turn into spaces.
        for group in groups:
            sys.stdout.write(f"{group.kind}\t{group.name or '-'}\t{group.summary}\n")
        if not groups:
            sys.stdout.write(f"nothing to redact ({result.kind.value})\n")
    if groups:
        raise typer.Exit(1)
