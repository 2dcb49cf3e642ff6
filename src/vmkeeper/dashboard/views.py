"""What each page shows, from the services' own result objects (no I/O here: pure functions).

The pages never judge anything themselves: the colour of a layer is the worst status of its
checks, the sentence is the health verdict's, the advice the verdict's advice.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from vmkeeper.health.model import CHAIN, HealthReport, Layer, Status, worst
from vmkeeper.health.service import StatusReport
from vmkeeper.releases.results import ReleaseRow, ReleasesReport


class Colour(str, Enum):
    GREEN = "green"
    AMBER = "amber"
    RED = "red"


_COLOUR = {Status.OK: Colour.GREEN, Status.WARN: Colour.AMBER, Status.UNKNOWN: Colour.AMBER,
           Status.CRITICAL: Colour.RED}


@dataclass(frozen=True)
class LayerView:
    name: str
    colour: Colour
    summaries: tuple[str, ...]


@dataclass(frozen=True)
class AppView:
    name: str
    role: str
    status: str
    memory: str
    restarts: int
    release: str


@dataclass(frozen=True)
class Overview:
    colour: Colour
    sentence: str
    advice: str | None
    first_broken: str | None
    since: str | None
    layers: tuple[LayerView, ...]
    apps: tuple[AppView, ...]
    host: tuple[LayerView, ...]
    active_release: str | None


def size(value: int | None) -> str:
    if value is None:
        return "—"
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value = value / 1024  # type: ignore[assignment]
    return f"{value} B"  # pragma: no cover - the loop returns


def age(then: datetime, now: datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    for unit, span in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= span:
            return f"{seconds // span} {unit} ago"
    return f"{seconds} s ago"


def overview(report: HealthReport, status: StatusReport, since: str | None = None) -> Overview:
    """The chain top to bottom, coloured; the host's checks (disk, memory, pressure) beside."""
    layers = tuple(_layer(layer, report) for layer in CHAIN)
    host = tuple(LayerView(c.name, _COLOUR[c.status], (c.summary,))
                 for c in report.checks if c.layer in (Layer.HOST, Layer.RUNTIME))
    apps = tuple(AppView(a.name, a.role or "—", a.status, size(a.memory_bytes), a.restarts,
                         a.release or "—") for a in status.apps)
    return Overview(_COLOUR[report.status], report.verdict, report.advice,
                    report.first_broken_layer, since if report.first_broken_layer else None,
                    layers, apps, host, status.active_release)


def _layer(layer: Layer, report: HealthReport) -> LayerView:
    checks = [c for c in report.checks if c.layer is layer]
    colour = _COLOUR[worst(c.status for c in checks)] if checks else Colour.AMBER
    summaries = tuple(c.summary for c in checks if c.status is not Status.OK) or tuple(
        c.summary for c in checks[:1]) or ("not checked",)
    return LayerView(layer.value, colour, summaries)


class Since:
    """When the first broken layer last changed: the overview's "since when"."""

    def __init__(self) -> None:
        self._key: tuple[str | None, str] | None = None
        self._at: str | None = None

    def note(self, report: HealthReport, now: datetime) -> str:
        key = (report.first_broken_layer, report.verdict)
        if key != self._key:
            self._key, self._at = key, now.astimezone(UTC).strftime("%H:%M:%S UTC")
        return self._at or ""


@dataclass(frozen=True)
class ReleaseView:
    id: str
    sha: str
    age: str
    size: str
    state: str
    active: bool
    has_build: bool
    rollback_blocked: str | None  # why the rollback button is disabled, or None


def releases(report: ReleasesReport, now: datetime) -> tuple[ReleaseView, ...]:
    return tuple(ReleaseView(r.id, r.sha[:12], age(r.created_at, now), size(r.size_bytes),
                             r.state, r.active, r.has_build, _blocked(r))
                 for r in report.releases)


def _blocked(row: ReleaseRow) -> str | None:
    if row.active:
        return "this release is the active one"
    if not row.has_build:
        return "its build output is gone (rebuild it with a deploy of its sha)"
    return None


@dataclass(frozen=True)
class Preflight:
    target: ReleaseView
    active: str | None
    subject: str
    env_differs: tuple[str, ...]
    blocked: str | None


def preflight(target: ReleaseView, active: str | None, subject: str,
              target_env: Iterable[str], active_env: Iterable[str]) -> Preflight:
    """What a rollback will do, before it does it: the env file *names* that differ."""
    differs = tuple(sorted(set(target_env) ^ set(active_env)))
    return Preflight(target, active, subject or "(commit subject unknown)", differs,
                     target.rollback_blocked)
