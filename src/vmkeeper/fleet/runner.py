"""The one way vmkeeper runs something on fleet hosts: ansible-runner, ad hoc, with a timeout.

Each host runs its own vmkeeper command (``health --json``, ``deploy --json``…) and the JSON it
prints is parsed from ansible-runner's event stream (``runner_on_ok`` / ``_failed`` /
``_unreachable``), never scraped from Ansible's human output. A command that exits non-zero
(``health`` on a warn) is still a host that answered: its JSON is read the same way. Every
event is kept in the run's artifact folder, so a run's per-host record is ansible-runner's own.
ansible-runner and ansible-core are imported when a fleet command runs, not for ``--help``.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

from vmkeeper.errors import UsageError
from vmkeeper.progress import Phase, Progress, ProgressEvent, silent

DEFAULT_HOST_CONFIG = "/etc/vmkeeper/vmkeeper.toml"


class Reach(str, Enum):
    ANSWERED = "answered"  # the command ran; ``data`` holds its JSON (or None if it printed none)
    UNREACHABLE = "unreachable"
    FAILED = "failed"  # Ansible could not run it (no such program, a module error)
    MISSING = "missing"  # no event for the host: the run timed out or was cancelled first


@dataclass(frozen=True)
class HostOutcome:
    host: str
    reach: Reach
    data: dict[str, Any] | None = None
    rc: int | None = None
    message: str = ""


@dataclass(frozen=True)
class Remote:
    """One vmkeeper command to run on every matched host."""

    args: list[str]
    pattern: str = "all"
    forks: int = 10
    timeout_s: float = 600.0
    remote_bin: str = "vmkeeper"
    extra: Mapping[str, str] = field(default_factory=dict)


class FleetRunner(Protocol):
    def __call__(self, inventory: Path, remote: Remote, run_dir: Path,
                 progress: Progress) -> list[HostOutcome]: ...


def command_line(remote: Remote) -> str:
    """The ad-hoc command, templated per host by Ansible: its own settings file and program."""
    for value in (remote.remote_bin, *remote.args):
        if any(mark in value for mark in ("{", "}", "'")):
            raise UsageError(f"{value!r} holds a character Ansible would template ({{ }} or '): "
                             "name the branch or path without it.")
    program = f"{{{{ vmkeeper_bin | default('{remote.remote_bin}') }}}}"
    config = f"{{{{ vmkeeper_config | default('{DEFAULT_HOST_CONFIG}') }}}}"
    return " ".join([program, "--config", config, *map(shlex.quote, remote.args)])


def outcome_of(event: Mapping[str, Any]) -> HostOutcome | None:
    """One host's outcome from one ansible-runner event; None for any other event."""
    kind = event.get("event")
    data = event.get("event_data") or {}
    host = str(data.get("host") or "")
    res = data.get("res") or {}
    if kind == "runner_on_unreachable":
        return HostOutcome(host, Reach.UNREACHABLE, message=str(res.get("msg", "")).strip())
    if kind not in ("runner_on_ok", "runner_on_failed"):
        return None
    parsed = _json_object(str(res.get("stdout") or ""))
    rc = res.get("rc")
    if parsed is None and kind == "runner_on_failed":
        reason = str(res.get("stderr") or res.get("msg") or "").strip().splitlines()
        return HostOutcome(host, Reach.FAILED, rc=rc, message=(reason or ["failed"])[-1])
    return HostOutcome(host, Reach.ANSWERED, parsed, rc=rc)


def outcomes(events: Iterable[Mapping[str, Any]], hosts: Iterable[str]) -> list[HostOutcome]:
    """Each expected host's outcome, in order; a host no event names is MISSING."""
    seen = {o.host: o for o in filter(None, map(outcome_of, events))}
    return [seen.get(host) or HostOutcome(host, Reach.MISSING,
                                          message="no answer before the run ended")
            for host in hosts]


def _json_object(text: str) -> dict[str, Any] | None:
    # vmkeeper --json prints exactly one object on stdout; anything else is "no JSON".
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def recorded_events(artifact_dir: Path) -> list[dict[str, Any]]:
    """The events ansible-runner stored for a run, in order (for records and resume)."""
    folder = artifact_dir / "job_events"
    files = sorted(folder.glob("*.json"), key=lambda p: int(p.name.split("-", 1)[0]))
    events: list[dict[str, Any]] = []
    for path in files:
        try:
            events.append(json.loads(path.read_text()))
        except (OSError, ValueError):
            continue  # a half-written event from a killed run: the others still count
    return events


def list_hosts(inventory: Path, pattern: str = "all") -> list[str]:
    """The inventory's hosts matching ``pattern``, in inventory order (Ansible's own parser)."""
    if not inventory.exists():
        raise UsageError(f"the inventory {inventory} does not exist: give -i FILE or set "
                         "fleet.inventory.")
    from ansible.inventory.manager import InventoryManager  # heavy: only when a fleet runs
    from ansible.parsing.dataloader import DataLoader

    manager = InventoryManager(loader=DataLoader(), sources=[str(inventory)])
    hosts = [host.name for host in manager.get_hosts(pattern=pattern)]
    if not hosts:
        raise UsageError(f"no host of {inventory} matches {pattern!r}: check --limit and the "
                         "inventory's groups.")
    return hosts


def ansible_run(inventory: Path, remote: Remote, run_dir: Path,
                progress: Progress = silent) -> list[HostOutcome]:
    """Run ``remote`` through ansible-runner; each matched host's outcome, in order."""
    import ansible_runner  # heavy: only when a fleet runs

    hosts = list_hosts(inventory, remote.pattern)
    run_dir.mkdir(parents=True, exist_ok=True)
    on_event = _progress_events(progress)
    result = ansible_runner.run(
        private_data_dir=str(run_dir), ident=fresh_ident(run_dir), inventory=str(inventory),
        host_pattern=remote.pattern, module="ansible.builtin.command",
        module_args=command_line(remote), forks=remote.forks, timeout=int(remote.timeout_s),
        quiet=True, event_handler=on_event, suppress_env_files=True,
        envvars=_ansible_env(),
    )
    events = [dict(e) for e in result.events]
    found = outcomes(events, hosts)
    if result.status != "successful" and all(o.reach is Reach.MISSING for o in found):
        # Ansible itself did not run (not installed, a timeout): say why on every host.
        why = f"ansible run {result.status}: {_last_line(result.stdout.read())}"
        found = [replace(o, message=why) for o in found]
    return found


def fresh_ident(run_dir: Path) -> str:
    """An artifacts folder no earlier run in ``run_dir`` used: ansible-runner's events are read
    from it, and a resumed wave's folder still holds the halted attempt's events (whose failed
    host would otherwise mask the new answer)."""
    taken = run_dir / "artifacts"
    number = 1
    while (taken / ("ansible" if number == 1 else f"ansible-{number}")).exists():
        number += 1
    return "ansible" if number == 1 else f"ansible-{number}"


def _ansible_env() -> dict[str, str]:
    # The ansible programs come with the Python package, beside this interpreter.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    # Host keys are checked as the operator's ssh configures it: never turned off here.
    # Pipelining: the module goes over the open SSH session, no temporary file per host.
    return {"PATH": path, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False",
            "ANSIBLE_PIPELINING": "True"}


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


def _progress_events(progress: Progress) -> Callable[[dict[str, Any]], bool]:
    def handle(event: dict[str, Any]) -> bool:
        got = outcome_of(event)
        if got is not None:
            phase = Phase.DONE if got.reach is Reach.ANSWERED else Phase.FAILED
            progress(ProgressEvent(f"{got.host}: {got.reach.value}", phase, step=got.host))
        return True  # keep every event: they are the run's record

    return handle
