"""What `diagnose oom` finds: OOM kills, the systemd units that lost processes, the report.

Field names are the `diagnose oom --json` contract (DESIGN.md): `events[]` with `victim` and its
kB figures as the kernel prints them, `constraint`, `memcg`, `invoker`; `units[]`; `verdict`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


@dataclass(frozen=True)
class Victim:
    name: str
    pid: int
    uid: int | None = None
    total_vm_kb: int | None = None
    anon_rss_kb: int | None = None
    file_rss_kb: int | None = None
    shmem_rss_kb: int | None = None
    pgtables_kb: int | None = None
    oom_score_adj: int | None = None

    @property
    def rss_kb(self) -> int | None:
        held = (self.anon_rss_kb, self.file_rss_kb, self.shmem_rss_kb)
        parts = [part for part in held if part is not None]
        return sum(parts) if parts else None


@dataclass(frozen=True)
class Invoker:
    """The task whose allocation made the kernel run the OOM killer (not always the victim)."""

    name: str
    gfp_mask: str
    order: int
    oom_score_adj: int


@dataclass(frozen=True)
class Memcg:
    oom_memcg: str | None  # the cgroup whose limit was hit
    task_memcg: str | None  # the victim's own cgroup


@dataclass(frozen=True)
class OomEvent:
    time: str | None  # as printed
    timestamp: str | None  # ISO 8601 where the format carries a full date
    victim: Victim
    constraint: str | None  # global | memcg | cpuset | mempolicy (or the kernel's own word)
    memcg: Memcg | None
    invoker: Invoker | None
    score: int | None = None
    reaped: bool = False
    total_ram_kb: int | None = None
    units: tuple[str, ...] = ()
    verdict: str = ""


class UnitResult(StrEnum):
    """What systemd said about a unit: it lost a process, or it failed because of that."""

    PROCESS_KILLED = "process-killed"
    FAILED = "failed-oom-kill"


@dataclass(frozen=True)
class UnitOom:
    unit: str
    time: str | None
    result: UnitResult


@dataclass(frozen=True)
class ParsedLog:
    """Everything the parser found in one log, before any filtering or verdict."""

    events: tuple[OomEvent, ...]
    event_times: tuple[datetime | None, ...]  # each event's time to filter on, where known
    units: tuple[UnitOom, ...]
    total_ram_kb: int | None
    lines_read: int
    events_dropped: int  # kills beyond the parser's bound on events


@dataclass(frozen=True)
class OomReport:
    source: str
    skipped_sources: tuple[str, ...]
    events: tuple[OomEvent, ...]
    units: tuple[UnitOom, ...]
    total_ram_kb: int | None
    lines_read: int
    events_dropped: int
    verdict: str

    @property
    def found(self) -> bool:
        return bool(self.events)
