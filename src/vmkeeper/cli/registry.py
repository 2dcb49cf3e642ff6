"""Every command group, in one list, so adding a group touches one line here."""

from __future__ import annotations

import importlib

import typer

# (module under vmkeeper.cli, group name or None for top-level commands)
GROUPS: list[tuple[str, str | None]] = [
    ("media", "media"),
    ("sandbox", "sandbox"),
    ("diagnose", "diagnose"),
    ("health", None),
    ("deploy", None),
    ("redact", None),
    ("bundle", None),
    ("fleet", "fleet"),
]


def register(app: typer.Typer) -> None:
    if getattr(app, "_vmkeeper_registered", False):
        return
    for module_name, group in GROUPS:
        module = importlib.import_module(f"vmkeeper.cli.{module_name}")
        if group is None:
            for command in module.COMMANDS:
                app.command(command.__name__.replace("_", "-").removesuffix("-cmd"))(command)
        else:
            app.add_typer(module.app, name=group)
    app._vmkeeper_registered = True  # type: ignore[attr-defined]
