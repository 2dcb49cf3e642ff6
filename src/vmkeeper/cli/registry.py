"""Every command and command group, in one table, loaded only when it is run.

`vmkeeper --help` lists every command from the one-line summaries here and imports none of their
modules: importing them all (pydantic, Rich, httpx, FastAPI…) cost ~0.3 s on every start, and
monitoring runs `vmkeeper health` every minute. A command's module is imported when the command
is resolved, so `vmkeeper health` pays for health only. A test checks each summary here against
the loaded command's own first docstring line, so the two cannot drift apart.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True)
class Entry:
    """A command as typed, where it lives (a function, or a typer.Typer for a group), and its
    one-line summary."""

    name: str
    module: str  # under vmkeeper.cli
    attribute: str
    summary: str

    def load(self) -> Any:
        """The real click command (importing its module), named as typed."""
        target = getattr(importlib.import_module(f"vmkeeper.cli.{self.module}"), self.attribute)
        command: Any  # typer's vendored click.Command, which it does not export
        if isinstance(target, typer.Typer):
            command = typer.main.get_group(target)
        else:
            single = typer.Typer()
            single.command(self.name)(target)
            command = typer.main.get_command(single)
        command.name = self.name
        return command


# In the order `vmkeeper --help` shows them: the runbook's commands first, then the groups.
ENTRIES: tuple[Entry, ...] = (
    Entry("status", "health", "status",
          "The topology and each PM2 app's state (like `pm2 status`, with ports and the release)."),
    Entry("health", "health", "health",
          "Every runbook check, concurrently. Exit 0 ok, 1 warn, 2 critical, 3 unknown."),
    Entry("recover", "health", "recover",
          "The runbook's 503 decision tree, acted on and verified. Exit 0 healed or healthy."),
    Entry("watch", "watch", "watch",
          "Watch the VM and heal it: detect, recover within a budget, alert, keep the evidence."),
    Entry("incidents", "watch", "incidents",
          "Every incident the watcher opened: diagnosis, actions, evidence, time to recover."),
    Entry("logs", "health", "logs",
          "The last lines of each log, redacted; never tails forever (unlike `pm2 logs`)."),
    Entry("doctor", "health", "doctor",
          "Node, PM2, FFmpeg, Apache and paths checked. Exit 0 ok, 1 warn, 2 critical, 3 unknown."),
    Entry("deploy", "deploy", "deploy",
          "Deploy the frontend as a new immutable release (the runbook's eight steps)."),
    Entry("releases", "deploy", "releases",
          "List retained releases, newest first; mark the active one."),
    Entry("rollback", "deploy", "rollback",
          "Start frontend-dev from a retained release (the runbook's manual rollback, "
          "health-gated)."),
    Entry("redact", "redact", "redact",
          "Write the document with every secret replaced by «redacted:<kind>»."),
    Entry("bundle", "bundle", "bundle",
          "Collect health, PM2, logs, OOM kills and the host into one redacted tar.gz "
          "(mode 0600)."),
    Entry("config", "config", "app", "The effective settings and where each came from."),
    Entry("media", "media", "app", "Probe and reverse videos inside the runbook's limits."),
    Entry("sandbox", "sandbox", "app",
          "The standard VM replicated on loopback ports, for demos and tests."),
    Entry("diagnose", "diagnose", "app", "Find out why the VM lost its processes."),
    Entry("agent", "agent", "app",
          "The HTTP command API: deploys on push, scoped tokens, live output."),
    Entry("audit", "audit", "app", "Check the agent's hash-chained audit log."),
    Entry("fleet", "fleet", "app", "Fleet health and health-gated rolling deploys on Ansible."),
)


class _Unloaded(TyperCommand):
    """Stands in for a command in help listings until the command is run."""

    def __init__(self, entry: Entry) -> None:
        super().__init__(name=entry.name, help=entry.summary)
        self.entry = entry


class LazyGroup(TyperGroup):
    """The root group: every entry listed from its summary, imported when resolved."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        eager = dict(self.commands)
        self.commands = {entry.name: _Unloaded(entry) for entry in ENTRIES}
        self.commands.update(eager)  # groups added directly to the app (tests) stay as they are

    def resolve_command(self, ctx: Any, args: list[str]) -> tuple[str | None, Any, list[str]]:
        name = args[0] if args else None
        found = self.commands.get(name) if name is not None else None
        if isinstance(found, _Unloaded):
            self.commands[found.entry.name] = found.entry.load()
        return super().resolve_command(ctx, args)
