"""Incidents, kept durably: one JSON file under state_dir/watch, rewritten atomically.

A few incidents a month on one VM: a whole-file atomic rewrite is simpler than a database and
never leaves a half-written record (vmkeeper.atomic)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from vmkeeper.atomic import write_atomic
from vmkeeper.watch.state import Phase, WatchState


@dataclass(frozen=True)
class Incident:
    id: str
    state: str  # "open" | "resolved" | "gave_up"
    opened_at: float
    diagnosis: str
    resolved_at: float | None = None
    actions: list[dict[str, Any]] = field(default_factory=list)
    evidence: list[str] = field(default_factory=list)
    seconds_to_recover: float | None = None


class Store:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.incidents_path = folder / "incidents.json"
        self.state_path = folder / "state.json"

    def incidents(self) -> list[Incident]:
        try:
            rows = json.loads(self.incidents_path.read_text())
        except FileNotFoundError:
            return []
        return [Incident(**row) for row in rows]

    def save(self, incident: Incident) -> None:
        rows = [i for i in self.incidents() if i.id != incident.id] + [incident]
        rows.sort(key=lambda i: i.opened_at)
        self.folder.mkdir(parents=True, exist_ok=True)
        from vmkeeper.redact import redact_json

        # Kept redacted, so `vmkeeper incidents`, the bundle and the dashboard never show a
        # secret a recovery step's command line or a verdict carried.
        write_atomic(self.incidents_path,
                     json.dumps(redact_json([asdict(i) for i in rows]), indent=1))

    def get(self, incident_id: str) -> Incident | None:
        return next((i for i in self.incidents() if i.id == incident_id), None)

    def update(self, incident_id: str, **changes: Any) -> Incident | None:
        found = self.get(incident_id)
        if found is None:
            return None
        changed = replace(found, **changes)
        self.save(changed)
        return changed

    def load_state(self) -> WatchState:
        try:
            data = json.loads(self.state_path.read_text())
            data["phase"] = Phase(data["phase"])
            data["recoveries"] = tuple(data["recoveries"])
            return WatchState(**data)
        except (OSError, ValueError, KeyError, TypeError):
            return WatchState()

    def save_state(self, state: WatchState) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        write_atomic(self.state_path, json.dumps({**asdict(state), "phase": state.phase.value}))
