"""Fleet runs on disk: one folder per run (its record, and ansible-runner's artifacts per wave)
and the fleet lock naming who holds it.

The record is rewritten atomically after every wave, so a run killed at any point resumes from
the wave it was in; the lock is an flock (vmkeeper/flock.py), freed by the kernel when its
holder dies, so a crashed run never leaves a lock to delete by hand.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path
from typing import Any

from vmkeeper import flock
from vmkeeper.atomic import write_atomic
from vmkeeper.errors import UsageError
from vmkeeper.logrecord import timestamp


class RunState(str, Enum):
    RUNNING = "running"
    DONE = "done"
    HALTED = "halted"


class HostState(str, Enum):
    PENDING = "pending"
    DEPLOYED = "deployed"  # on the target release and healthy after the soak
    FAILED = "failed"  # its deploy failed, or it was not healthy after the soak
    UNREACHABLE = "unreachable"
    ROLLED_BACK = "rolled_back"  # converge put it back on its previous release


@dataclass(frozen=True)
class HostRecord:
    host: str
    wave: int
    state: HostState = HostState.PENDING
    release: str | None = None
    previous: str | None = None
    error: str | None = None


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    command: str
    branch: str | None
    policy: str
    threshold: str
    waves: list[list[str]]
    hosts: dict[str, HostRecord]
    state: RunState = RunState.RUNNING
    wave: int = 0  # the wave to run next (or the one it halted in)
    started_at: str = field(default_factory=timestamp)
    halted_reason: str | None = None

    def with_host(self, record: HostRecord) -> RunRecord:
        return replace(self, hosts={**self.hosts, record.host: record})

    def split(self) -> dict[str, list[str]]:
        """Hosts by state: the fleet state a held run leaves."""
        groups: dict[str, list[str]] = {}
        for record in self.hosts.values():
            groups.setdefault(record.state.value, []).append(record.host)
        return groups


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ-") + secrets.token_hex(3)


def runs_root(state_dir: Path) -> Path:
    return state_dir / "fleet" / "runs"


def run_dir(state_dir: Path, run_id: str) -> Path:
    if not run_id or "/" in run_id or run_id.startswith("."):
        raise UsageError(f"{run_id!r} is not a run id: `vmkeeper fleet runs` lists them.")
    return runs_root(state_dir) / run_id


def save(state_dir: Path, record: RunRecord) -> None:
    folder = run_dir(state_dir, record.run_id)
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "run.json", json.dumps(asdict(record), indent=2, default=str))


def load(state_dir: Path, run_id: str) -> RunRecord:
    path = run_dir(state_dir, run_id) / "run.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        hosts = {name: HostRecord(**{**h, "state": HostState(h["state"])})
                 for name, h in data.pop("hosts").items()}
        return RunRecord(**{**data, "hosts": hosts, "state": RunState(data["state"])})
    except FileNotFoundError:
        raise UsageError(f"no fleet run {run_id}: `vmkeeper fleet runs` lists them.") from None
    except (ValueError, KeyError, TypeError) as error:
        raise UsageError(f"the record of fleet run {run_id} ({path}) is unreadable ({error}): "
                         "start a new run.") from None


def list_runs(state_dir: Path) -> list[RunRecord]:
    """Every recorded run, newest first (an unreadable record is left out, not fatal)."""
    root = runs_root(state_dir)
    if not root.is_dir():
        return []
    found: list[RunRecord] = []
    for name in sorted(os.listdir(root), reverse=True):
        try:
            found.append(load(state_dir, name))
        except UsageError:
            continue
    return found


def take_lock(state_dir: Path, what: str, run_id: str) -> flock.HeldLock:
    """The fleet lock: one fleet operation at a time from this control machine."""
    refusal = flock.Refusal(busy="Another fleet run holds the fleet lock",
                            advice="wait for it to finish, or resume it later with "
                                   "`vmkeeper fleet deploy --resume RUN_ID`.")
    return flock.take(state_dir / "fleet" / "fleet.lock", what, extra={"run_id": run_id},
                      refusal=refusal)
