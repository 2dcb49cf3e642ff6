"""The values health reports: a status per check, the layer it belongs to, why a check is not
ok (its cause), the one diagnosis of the chain, the whole report."""

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


class Cause(str, Enum):
    """Why a check is not ok: the one value the verdict and the recovery plan key on.

    Declared in the order a layer's causes are told: when one layer has several broken checks,
    the first of their causes in this order is the layer's cause (Apache not listening before
    Apache answering 503; an app missing from PM2 before one that crashes).
    """

    FOREIGN_OWNER = "foreign_owner"  # a process PM2 did not start holds an app's port
    ORPHANED = "orphaned"  # an app's own server, left behind by its killed wrapper, holds it
    NOT_LISTENING = "not_listening"
    REFUSED = "refused"
    TIMEOUT = "timeout"
    DNS = "dns"
    HTTP_ERROR = "error"
    MISROUTED = "misrouted"  # the switch's map routes the site where nothing serves
    PROXY_503 = "proxy_503"  # Apache's own 503: its upstream is unreachable (or held in error)
    STATUS = "status"  # an answer, but not the expected status
    MISSING = "missing"  # not in PM2's list
    CRASH_LOOP = "crash_loop"
    STOPPED = "stopped"
    DAEMON_DOWN = "daemon_down"
    OOM_KILL = "oom_kill"
    START_LIMIT_HIT = "start_limit_hit"
    UNIT_MISSING = "unit_missing"
    UNIT_DOWN = "unit_down"
    DUMP_MISSING = "dump_missing"
    DUMP_BAD = "dump_bad"
    DUMP_EMPTY = "dump_empty"
    DUMP_INCOMPLETE = "dump_incomplete"
    DUMP_STALE = "dump_stale"
    FLAPPING = "flapping"  # online, but restarted since the previous run
    UNEXPECTED = "unexpected"  # PM2 runs apps the settings do not name
    STICKY_RETRY = "sticky_retry"
    NO_PROXYPASS = "no_proxypass"
    NO_SWITCH_SNIPPET = "no_switch_snippet"  # Apache lacks the zero-downtime include
    NODE_MISMATCH = "node_mismatch"
    UNAVAILABLE = "unavailable"  # the fact could not be gathered

    @property
    def rank(self) -> int:
        return list(Cause).index(self)


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    summary: str
    observed: Any = None
    expected: Any = None
    layer: Layer = Layer.HOST
    seconds: float | None = None
    # Why it is not ok (None when it is): what the verdict and the recovery plan key on.
    reason: Cause | None = None
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Diagnosis:
    """The one reading of the chain that health prints and recover acts on.

    ``layer`` is the first broken layer in causal order (None when the chain answers),
    ``cause`` what broke there, ``evidence`` what each layer of the chain shows, ``advice``
    what to do, ``line`` the sentence health opens with. ``broken`` holds the critical checks
    of the chain (the apps, ports and pids a plan needs), ``supervisor`` who restarts PM2.
    """

    layer: Layer | None
    cause: Cause | None
    evidence: tuple[str, ...]
    advice: str | None
    line: str
    broken: tuple[Check, ...] = ()
    supervisor: str = "pm2"

    def broken_in(self, layer: Layer) -> list[Check]:
        return [c for c in self.broken if c.layer is layer]

    def causes_in(self, layer: Layer) -> set[Cause | None]:
        return {c.reason for c in self.broken_in(layer)}


@dataclass(frozen=True)
class HealthReport:
    status: Status
    verdict: str
    first_broken_layer: str | None
    advice: str | None
    checks: list[Check]
    seconds: float
    supervisor: str  # "systemd" or "pm2"
    # The release the frontend runs from (its PM2 cwd in the releases root); None when it runs
    # from elsewhere or not at all. `fleet health` shows it per host.
    active_release: str | None = None

    @property
    def exit_code(self) -> int:
        return self.status.exit_code

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def broken(self, layer: Layer) -> list[Check]:
        return [c for c in self.checks if c.layer is layer and c.status is Status.CRITICAL]
