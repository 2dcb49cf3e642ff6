"""The values health reports: a status per check, the layer it belongs to, the whole report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any


class Status(str, Enum):
    OK = "ok"
    WARN = "warn"
    CRITICAL = "critical"
    UNKNOWN = "unknown"

    @property
    def exit_code(self) -> int:
        """The monitoring-plugin convention: 0 ok, 1 warn, 2 critical, 3 unknown."""
        return {"ok": 0, "warn": 1, "critical": 2, "unknown": 3}[self.value]


# Which status wins when checks disagree. An unchecked layer at 3 a.m. is worse than a warning
# and better than a known outage.
_RANK = {Status.OK: 0, Status.WARN: 1, Status.UNKNOWN: 2, Status.CRITICAL: 3}


def worst(statuses: Iterable[Status]) -> Status:
    return max(statuses, key=lambda s: _RANK[s], default=Status.OK)


class Layer(str, Enum):
    """The chain a request travels, top to bottom; host and runtime sit beside it."""

    PUBLIC = "public URL"
    APACHE = "Apache"
    PORTS = "listening ports"
    APPS = "PM2 apps"
    SUPERVISOR = "PM2 supervisor"
    DUMP = "dump"
    HOST = "host"
    RUNTIME = "runtime"


CHAIN: tuple[Layer, ...] = (
    Layer.PUBLIC, Layer.APACHE, Layer.PORTS, Layer.APPS, Layer.SUPERVISOR, Layer.DUMP,
)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    summary: str
    observed: Any = None
    expected: Any = None
    layer: Layer = Layer.HOST
    seconds: float | None = None
    # A short code the recovery planner keys on ("refused", "proxy_503", "foreign_owner"…).
    reason: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Verdict:
    layer: Layer | None
    line: str
    advice: str | None


@dataclass(frozen=True)
class HealthReport:
    status: Status
    verdict: str
    first_broken_layer: str | None
    advice: str | None
    checks: list[Check]
    seconds: float
    supervisor: str  # "systemd" or "pm2"

    @property
    def exit_code(self) -> int:
        return self.status.exit_code

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def broken(self, layer: Layer) -> list[Check]:
        return [c for c in self.checks if c.layer is layer and c.status is Status.CRITICAL]
