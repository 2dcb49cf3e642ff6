"""What the agent's warm health gather sees change between two looks: PM2 restart counts that
grew, and health going from one state to another (status and first broken layer).

PM2 keeps only a counter per app, and health keeps no history: these changes are observed by
the agent's background gather (routes.Dashboard) while the dashboard is being looked at, kept
in the agent's memory (the last ``keep``). A restart while nobody looked still shows at the
next look, as the counter's difference. Durable incidents are the watcher's store.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from enum import Enum

from vmkeeper.health.model import HealthReport, Status
from vmkeeper.health.service import StatusReport


class ChangeKind(str, Enum):
    RESTART = "restart"
    HEALTH = "health"


@dataclass(frozen=True)
class Change:
    seq: int
    at: datetime
    kind: ChangeKind
    text: str
    ok: bool
    app: str | None = None  # a restart's app: its log excerpt is the evidence
    report: HealthReport | None = None  # a health change's report: the evidence


class Changes:
    def __init__(self, keep: int = 200) -> None:
        self._lock = threading.Lock()
        self._seen: deque[Change] = deque(maxlen=keep)
        self._restarts: dict[str, int] | None = None
        self._health: tuple[Status, str | None] | None = None
        self._seq = 0

    def note(self, report: HealthReport, status: StatusReport, now: datetime) -> None:
        with self._lock:
            counts = {app.name: app.restarts for app in status.apps}
            for name, count in sorted(counts.items()):
                before = (self._restarts or {}).get(name)
                if before is not None and count > before:
                    times = "once" if count - before == 1 else f"{count - before} times"
                    self._add(now, ChangeKind.RESTART,
                              f"{name} restarted {times} (PM2 restarts {before} → {count})",
                              False, app=name)
            self._restarts = counts  # a lower count (pm2 reset, delete + start) is a new baseline
            key = (report.status, report.first_broken_layer)
            if self._health is not None and key != self._health:
                was = self._health[1] or self._health[0].value
                self._add(now, ChangeKind.HEALTH,
                          f"health {was} → {report.first_broken_layer or report.status.value}: "
                          f"{report.verdict}", report.first_broken_layer is None, report=report)
            self._health = key

    def _add(self, now: datetime, kind: ChangeKind, text: str, ok: bool, *,
             app: str | None = None, report: HealthReport | None = None) -> None:
        self._seq += 1
        self._seen.append(Change(self._seq, now, kind, text, ok, app, report))

    def recent(self) -> list[Change]:
        with self._lock:
            return list(self._seen)

    def get(self, seq: int) -> Change | None:
        return next((c for c in self.recent() if c.seq == seq), None)
