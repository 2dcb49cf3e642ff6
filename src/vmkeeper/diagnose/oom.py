"""OOM kills from kernel logs: a streaming parser and the `diagnose oom` service.

The parser reads one line at a time and keeps only what an unfinished event still needs (a few
pending invoker, selection and constraint lines, bounded), so a log of any size is scanned in
constant memory; the events found are the output. It understands the kernel's formats from 3.x
to 6.x behind any of the prefixes journalctl, dmesg and syslog put in front of a message.
"""

from __future__ import annotations

import re
from collections import OrderedDict, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

from vmkeeper.adapters import kernel_log
from vmkeeper.errors import UsageError
from vmkeeper.settings import Settings

# A cheap test every line passes before any regex runs: nearly all of a kernel log is noise, and
# every line we care about carries one of these words (case as the kernel prints them).
_CANDIDATE = re.compile(r"oom|OOM|Kill|killed as a result|pages RAM")

_KEYWORDS = (b"oom", b"OOM", b"Kill", b"killed as a result", b"pages RAM")
_MAX_LINE_BYTES = 1 << 20
# A selection's own `Killed process` line follows within a line or two (another CPU's printk
# may slip in between).
_SELECTION_REACH = 3
_PHRASES = ("invoked oom-killer", "oom-kill:", "or sacrifice child", "Killed process",
            "oom_reaper: reaped", "killed as a result", "OOM killer", "'oom-kill'", "pages RAM")

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Prefixes, tried in order on a candidate line. Each yields the time as printed and the rest.
_PREFIXES: tuple[tuple[str, re.Pattern[str]], ...] = (
    # dmesg -T
    ("ctime", re.compile(
        r"^\[(?P<time>(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) [A-Z][a-z]{2} +\d{1,2} "
        r"\d\d:\d\d:\d\d \d{4})\]\s?(?P<rest>.*)$")),
    # dmesg raw, optionally with the level (`dmesg -r` or /dev/kmsg-style `<6>`)
    ("uptime", re.compile(r"^(?:<\d+>)?\[\s*(?P<time>\d+\.\d+)\]\s?(?P<rest>.*)$")),
    # RFC 5424 (`<6>1 2026-06-12T03:14:15.1+02:00 host kernel - - - msg`), journalctl
    # short-iso / short-iso-precise, rsyslog's ISO template, dmesg --time-format iso
    ("iso", re.compile(
        r"^(?:<\d+>\d* )?(?P<time>\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:[.,]\d+)?"
        r"(?:Z|[+-]\d\d:?\d\d)?)\s(?P<rest>.*)$")),
    # journalctl short / short-precise, RFC 3164 syslog (kern.log, /var/log/messages)
    ("short", re.compile(
        r"^(?P<time>[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d(?:\.\d+)?)\s(?P<rest>.*)$")),
)
# After a wall-clock time: `host ident[pid]: ` (3164, journal) or `host ident pid msgid sd ` (5424).
_SYSLOG_HEADER = re.compile(
    r"^(?P<host>\S+) (?P<ident>[^\s:\[]+)(?:\[\d+\])?(?::\s?| \S+ \S+ (?:-|\[.*?\])\s?)(?P<msg>.*)$"
)
# kern.log on Ubuntu keeps printk's own uptime stamp after `kernel: `.
_INNER_UPTIME = re.compile(r"^(?:<\d+>)?\[\s*(?P<time>\d+\.\d+)\]\s?")

_INVOKER = re.compile(
    r"^(?P<name>.+?) invoked oom-killer: gfp_mask=(?P<gfp>0x[0-9a-fA-F]+)(?:\([^)]*\))?,"
    r"(?: nodemask=\S+,)?\s*order=(?P<order>-?\d+),(?: oom_adj=-?\d+,)?"
    r"\s*oom_(?:score_)?adj=(?P<adj>-?\d+)"
)
_SELECT = re.compile(
    r"(?P<scope>Memory cgroup out of memory|Out of memory(?: \([^)]*\))?): Kill process "
    r"(?P<pid>\d+) \((?P<name>.+?)\) score (?P<score>-?\d+) or sacrifice child"
)
_KILLED = re.compile(
    r"(?:(?P<scope>Memory cgroup out of memory|Out of memory(?: \([^)]*\))?): )?"
    r"Killed process (?P<pid>\d+)(?:, UID (?P<uid3>\d+),)? \((?P<name>.+?)\)(?=[ ,]|$)(?P<rest>.*)$"
)
_REAPED = re.compile(r"oom_reaper: reaped process (?P<pid>\d+) \((?P<name>.+?)\)(?=[ ,]|$)")
_CONSTRAINT = re.compile(r"oom-kill:constraint=(?P<constraint>\w+)(?P<rest>.*)$")
_TASK_IN = re.compile(r"Task in (?P<task>\S+) killed as a result of limit of (?P<oom>\S+)")
_PAGES_RAM = re.compile(r"^(?P<pages>\d+) pages RAM\s*$")
_UNIT = re.compile(
    r"(?P<unit>[\w@.:\\-]+\.(?:service|scope|slice|socket|mount|swap|timer)): "
    r"(?P<what>A process of this unit has been killed by the OOM killer|"
    r"The kernel OOM killer killed some processes in this unit|"
    r"Failed with result 'oom-kill')\."
)
_FIELDS = re.compile(
    r"(?P<key>total-vm|anon-rss|file-rss|shmem-rss|pgtables|oom_score_adj|UID)[: ]\s*(?P<val>-?\d+)"
)
_FIELD_NAMES = {
    "total-vm": "total_vm_kb", "anon-rss": "anon_rss_kb", "file-rss": "file_rss_kb",
    "shmem-rss": "shmem_rss_kb", "pgtables": "pgtables_kb", "oom_score_adj": "oom_score_adj",
    "UID": "uid",
}
_CONSTRAINTS = {
    "CONSTRAINT_NONE": "global", "CONSTRAINT_MEMCG": "memcg", "CONSTRAINT_CPUSET": "cpuset",
    "CONSTRAINT_MEMORY_POLICY": "mempolicy",
}

# Bounds that keep memory flat on hostile input (a crash-looping container can log a kill a second).
_MAX_PENDING = 16
_MAX_RECENT_KEYS = 1024
MAX_EVENTS = 10_000
# Two kill lines for the same pid and name this close are one kill logged twice.
_SAME_KILL_SECONDS = 5.0
# The kernel prints `pages RAM` in pages; every architecture the runbook's VMs run uses 4 KiB.
_PAGE_KB = 4


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
        parts = [p for p in (self.anon_rss_kb, self.file_rss_kb, self.shmem_rss_kb) if p is not None]
        return sum(parts) if parts else None


@dataclass(frozen=True)
class Invoker:
    name: str
    gfp_mask: str
    order: int
    oom_score_adj: int


@dataclass(frozen=True)
class Memcg:
    oom_memcg: str | None
    task_memcg: str | None


@dataclass(frozen=True)
class OomEvent:
    time: str | None  # as printed
    timestamp: str | None  # ISO 8601 where the format carries a full date
    victim: Victim
    constraint: str | None  # global | memcg | cpuset | mempolicy
    memcg: Memcg | None
    invoker: Invoker | None
    score: int | None = None
    reaped: bool = False
    total_ram_kb: int | None = None
    units: tuple[str, ...] = ()
    verdict: str = ""


@dataclass(frozen=True)
class UnitOom:
    unit: str
    time: str | None
    result: str  # "process-killed" | "failed-oom-kill"


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


@dataclass
class _Stamp:
    text: str | None
    when: datetime | None  # aware, when the format gives a full date
    uptime: float | None  # seconds since boot (dmesg raw)
    yearless: datetime | None  # short syslog time with the year guessed, for filtering only


@dataclass
class _Pending:
    """An `oom-kill:` summary line whose `Killed process` line has not come yet."""

    stamp: _Stamp
    victim: Victim
    constraint: str
    memcg: Memcg | None
    seq: int | None = None


@dataclass
class _Open:
    """An event being assembled; frozen into an OomEvent at the end."""

    seq: int
    stamp: _Stamp
    victim: Victim
    constraint: str | None = None
    memcg: Memcg | None = None
    invoker: Invoker | None = None
    score: int | None = None
    reaped: bool = False
    total_ram_kb: int | None = None
    units: list[str] = field(default_factory=list)


@dataclass
class _Context:
    """What the kernel printed about one OOM before naming the victim."""

    invoker: Invoker | None = None
    total_ram_kb: int | None = None
    memcg: Memcg | None = None
    constraint: str | None = None


def _local_now() -> datetime:
    return datetime.now(UTC).astimezone()


def _parse_iso(text: str) -> datetime | None:
    cleaned = text.replace(",", ".").replace(" ", "T", 1)
    # Python wants +HH:MM; journalctl prints +HHMM.
    cleaned = re.sub(r"([+-]\d\d)(\d\d)$", r"\1:\2", cleaned)
    try:
        parsed = datetime.fromisoformat(cleaned)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.astimezone()


def _parse_ctime(text: str) -> datetime | None:
    try:
        return datetime.strptime(text, "%a %b %d %H:%M:%S %Y").astimezone()
    except ValueError:
        return None


def _guess_year(text: str, now: datetime) -> datetime | None:
    # RFC 3164 and journalctl short carry no year: assume the latest one not in the future.
    try:
        month = _MONTHS.index(text[:3]) + 1
        day = int(text[4:6])
        hms = text[7:15]
        hour, minute, second = (int(part) for part in hms.split(":"))
    except (ValueError, IndexError):
        return None
    for year in (now.year, now.year - 1):
        try:
            candidate = datetime(year, month, day, hour, minute, second, tzinfo=now.tzinfo)
        except ValueError:
            continue
        if candidate <= now + timedelta(days=1):
            return candidate
    return None


def split_prefix(line: str, now: datetime | None = None) -> tuple[_Stamp, str]:
    """The time printed in front of a kernel message, and the message itself."""
    line = line.rstrip("\r\n")
    for kind, pattern in _PREFIXES:
        match = pattern.match(line)
        if match is None:
            continue
        text = match.group("time")
        rest = match.group("rest")
        if kind == "uptime":
            return _Stamp(text, None, float(text), None), rest
        stamp = _Stamp(text, None, None, None)
        if kind == "ctime":
            stamp.when = _parse_ctime(text)
        elif kind == "iso":
            stamp.when = _parse_iso(text)
        else:
            stamp.yearless = _guess_year(text, now or _local_now())
        header = _SYSLOG_HEADER.match(rest) if kind in ("iso", "short") else None
        if header is not None:
            rest = header.group("msg")
        inner = _INNER_UPTIME.match(rest)
        if inner is not None:
            rest = rest[inner.end():]
            stamp.uptime = float(inner.group("time"))
        return stamp, rest
    return _Stamp(None, None, None, None), line


def _victim_fields(text: str) -> dict[str, int]:
    return {_FIELD_NAMES[m.group("key")]: int(m.group("val")) for m in _FIELDS.finditer(text)}


def _constraint_fields(rest: str) -> dict[str, str]:
    # Values can hold commas (mems_allowed=0,2), so split only before the next `key=`.
    fields: dict[str, str] = {}
    for part in re.split(r",(?=[a-z_]+(?:=|,|$))", rest.lstrip(",")):
        key, _eq, value = part.partition("=")
        fields[key.strip()] = value.strip()
    return fields


def _scope_constraint(scope: str | None) -> str | None:
    if scope is None:
        return None
    return "memcg" if scope.startswith("Memory cgroup") else "global"


class OomParser:
    """Feed lines in log order; ``finish`` returns the events. Memory stays bounded."""

    def __init__(self, now: datetime | None = None) -> None:
        self._now = now or _local_now()
        self._contexts: deque[_Context] = deque(maxlen=_MAX_PENDING)
        # `oom-kill:` lines by pid, waiting for their `Killed process` line.
        self._constraints: OrderedDict[int, _Pending] = OrderedDict()
        self._selection: tuple[_Stamp, int, str, int, str | None] | None = None
        self._events: list[_Open] = []
        self._by_key: OrderedDict[tuple[int, str], _Open] = OrderedDict()
        self._units: list[UnitOom] = []
        self.total_ram_kb: int | None = None
        self._seq = 0
        self._line_number = 0  # of the line being handled, to tell which came right after which
        self._selected_at = 0
        self.lines = 0
        self.dropped = 0

    def feed(self, line: str) -> None:
        self.lines += 1
        self._line_number = self.lines
        if _CANDIDATE.search(line) is None:
            return
        self._feed_candidate(line)

    def feed_all(self, lines: Iterable[str]) -> None:
        # The hot loop of a 500 MB scan: the prefilter inlined, no attribute lookups per line.
        search = _CANDIDATE.search
        handle = self._feed_candidate
        count = self.lines
        for line in lines:
            count += 1
            if search(line) is not None:
                self._line_number = count
                handle(line)
        self.lines = count

    def feed_chunks(self, chunks: Iterable[bytes]) -> None:
        """Feed raw log bytes in chunks of any size: the fast path for files and pipes."""
        tail = b""
        for chunk in chunks:
            data = tail + chunk if tail else chunk
            cut = data.rfind(b"\n") + 1
            if cut == 0 and len(data) < _MAX_LINE_BYTES:
                tail = data
                continue
            cut = cut or len(data)  # a runaway line without newline: take it as one line
            self._scan_block(data[:cut])
            tail = data[cut:]
        if tail:
            self._scan_block(tail + b"\n")

    def _scan_block(self, block: bytes) -> None:
        # Find the few candidate lines with bytes.find (memchr speed) instead of running a
        # regex over every line: nearly all of a kernel log is noise.
        base = self.lines
        self.lines += block.count(b"\n")
        starts: set[int] = set()
        for word in _KEYWORDS:
            position = block.find(word)
            while position != -1:
                starts.add(block.rfind(b"\n", 0, position) + 1)
                end = block.find(b"\n", position)
                position = block.find(word, end) if end != -1 else -1
        line_number, previous = base, 0
        for start in sorted(starts):
            line_number += block.count(b"\n", previous, start)
            previous = start
            self._line_number = line_number + 1
            end = block.find(b"\n", start)
            self._feed_candidate(block[start:end if end != -1 else None].decode(
                "utf-8", errors="replace"))

    def _feed_candidate(self, line: str) -> None:
        # Call traces (`oom_kill_process+0x…`) and task tables pass the cheap test; only lines
        # carrying one of these phrases are worth a prefix parse.
        if not any(phrase in line for phrase in _PHRASES):
            return
        stamp, message = split_prefix(line, self._now)
        if "Mem-Info" not in message and "pages RAM" in message:
            match = _PAGES_RAM.match(message.strip())
            if match:
                kb = int(match.group("pages")) * _PAGE_KB
                self.total_ram_kb = kb
                self._context().total_ram_kb = kb
            return
        if "invoked oom-killer" in message:
            self._on_invoker(message)
        elif "oom-kill:constraint=" in message:
            self._on_constraint(stamp, message)
        elif "or sacrifice child" in message:
            self._on_selection(stamp, message)
        elif "Killed process" in message:
            self._on_killed(stamp, message)
        elif "oom_reaper: reaped process" in message:
            self._on_reaped(stamp, message)
        elif "killed as a result of limit of" in message:
            self._on_task_in(message)
        elif "OOM killer" in message or "'oom-kill'" in message:
            self._on_unit(stamp, message)

    def _context(self) -> _Context:
        if not self._contexts:
            self._contexts.append(_Context())
        return self._contexts[-1]

    def _on_invoker(self, message: str) -> None:
        match = _INVOKER.search(message)
        if match is None:
            return
        invoker = Invoker(
            name=match.group("name").strip(),
            gfp_mask=match.group("gfp"),
            order=int(match.group("order")),
            oom_score_adj=int(match.group("adj")),
        )
        self._contexts.append(_Context(invoker=invoker, total_ram_kb=None))

    def _on_constraint(self, stamp: _Stamp, message: str) -> None:
        match = _CONSTRAINT.search(message)
        if match is None:
            return
        fields = _constraint_fields(match.group("rest"))
        constraint = _CONSTRAINTS.get(match.group("constraint"), match.group("constraint").lower())
        memcg = None
        if fields.get("oom_memcg") or fields.get("task_memcg"):
            memcg = Memcg(fields.get("oom_memcg") or None, fields.get("task_memcg") or None)
        pid_text = fields.get("pid", "")
        if pid_text.isdigit():
            uid_text = fields.get("uid", "")
            victim = Victim(
                name=fields.get("task", "?"), pid=int(pid_text),
                uid=int(uid_text) if uid_text.isdigit() else None,
            )
            self._seq += 1
            self._constraints[victim.pid] = _Pending(stamp, victim, constraint, memcg, self._seq)
            while len(self._constraints) > _MAX_PENDING:
                self._flush_constraint(self._constraints.popitem(last=False)[1])
        context = self._context()
        context.constraint = constraint
        context.memcg = memcg or context.memcg

    def _on_task_in(self, message: str) -> None:
        match = _TASK_IN.search(message)
        if match:
            context = self._context()
            context.memcg = Memcg(match.group("oom"), match.group("task"))
            context.constraint = "memcg"

    def _on_selection(self, stamp: _Stamp, message: str) -> None:
        match = _SELECT.search(message)
        if match is None:
            return
        self._flush_selection()
        self._selected_at = self._line_number
        self._selection = (
            stamp, int(match.group("pid")), match.group("name"), int(match.group("score")),
            _scope_constraint(match.group("scope")),
        )

    def _flush_constraint(self, pending: _Pending) -> None:
        # The kernel prints `oom-kill:` only once it has chosen its victim: a kill, even when
        # the `Killed process` line is cut from the excerpt.
        self._record(pending.stamp, pending.victim, pending.constraint, score=None,
                     memcg=pending.memcg, seq=pending.seq)

    def _flush_selection(self) -> None:
        # A selection never followed by its `Killed process` line (a cut excerpt) is still a kill.
        if self._selection is None:
            return
        stamp, pid, name, score, constraint = self._selection
        self._selection = None
        self._record(stamp, Victim(name=name, pid=pid), constraint, score=score)

    def _on_killed(self, stamp: _Stamp, message: str) -> None:
        match = _KILLED.search(message)
        if match is None:
            return
        if "sharing same memory" in match.group("rest"):
            return
        fields = _victim_fields(match.group("rest"))
        if match.group("uid3"):
            fields["uid"] = int(match.group("uid3"))
        victim = Victim(name=match.group("name"), pid=int(match.group("pid")), **fields)
        score = None
        constraint = _scope_constraint(match.group("scope"))
        if self._selection is not None:
            selected_stamp, selected_pid, _name, selected_score, selected_constraint = \
                self._selection
            # The selection names the parent; the kill on the very next line may be a sacrificed
            # child. Any later kill belongs to another OOM: the selection was a kill of its own.
            adjacent = self._line_number - self._selected_at <= _SELECTION_REACH
            if (adjacent or selected_pid == victim.pid) and _same_kill(selected_stamp, stamp):
                score, constraint = selected_score, constraint or selected_constraint
                self._selection = None
            else:
                self._flush_selection()
        self._record(stamp, victim, constraint, score=score)

    def _record(self, stamp: _Stamp, victim: Victim, constraint: str | None,
                score: int | None, memcg: Memcg | None = None, seq: int | None = None) -> None:
        key = (victim.pid, victim.name)
        pending = self._constraints.pop(victim.pid, None)
        if pending is not None:
            constraint = pending.constraint if pending.constraint != "global" else (
                constraint or pending.constraint)
            memcg = pending.memcg or memcg
            seq = pending.seq if seq is None else seq
            victim = _merge_victim(victim, pending.victim)
        existing = self._by_key.get(key)
        if existing is not None and _same_kill(existing.stamp, stamp):
            existing.victim = _merge_victim(existing.victim, victim)
            existing.score = existing.score if existing.score is not None else score
            existing.constraint = existing.constraint or constraint
            existing.memcg = existing.memcg or memcg
            return
        context = self._contexts.popleft() if self._contexts else _Context()
        memcg = memcg or context.memcg
        self._seq += 1
        event = _Open(
            seq=self._seq if seq is None else seq,
            stamp=stamp,
            victim=victim,
            constraint=constraint or context.constraint or ("memcg" if memcg else None),
            memcg=memcg,
            invoker=context.invoker,
            score=score,
            total_ram_kb=context.total_ram_kb or self.total_ram_kb,
        )
        if len(self._events) >= MAX_EVENTS:
            self.dropped += 1
            return
        self._events.append(event)
        self._by_key[key] = event
        self._by_key.move_to_end(key)
        while len(self._by_key) > _MAX_RECENT_KEYS:
            self._by_key.popitem(last=False)

    def _on_reaped(self, stamp: _Stamp, message: str) -> None:
        match = _REAPED.search(message)
        if match is None:
            return
        key = (int(match.group("pid")), match.group("name"))
        existing = self._by_key.get(key)
        if existing is not None:
            existing.reaped = True
            return
        # The reaper only runs on a victim: its line alone proves a kill whose line we missed.
        self._record(stamp, Victim(name=key[1], pid=key[0]), None, score=None)
        self._by_key[key].reaped = True

    def _on_unit(self, stamp: _Stamp, message: str) -> None:
        match = _UNIT.search(message)
        if match is None:
            return
        unit = match.group("unit")
        result = "failed-oom-kill" if match.group("what").startswith("Failed") else "process-killed"
        record = UnitOom(unit=unit, time=stamp.text, result=result)
        if record in self._units[-_MAX_PENDING:]:
            return
        if len(self._units) < MAX_EVENTS:
            self._units.append(record)
        target = self._event_for_unit(unit)
        if target is not None and unit not in target.units:
            target.units.append(unit)

    def _event_for_unit(self, unit: str) -> _Open | None:
        # A memcg path naming the unit is proof; otherwise systemd logs right after the kill.
        recent = self._events[-_MAX_PENDING:]
        for event in reversed(recent):
            if event.memcg and unit in (event.memcg.task_memcg or ""):
                return event
        return recent[-1] if recent else None

    def finish(self) -> tuple[list[OomEvent], list[UnitOom]]:
        self._flush_selection()
        while self._constraints:
            self._flush_constraint(self._constraints.popitem(last=False)[1])
        self._events.sort(key=lambda e: e.seq)
        events = [
            OomEvent(
                time=e.stamp.text,
                timestamp=e.stamp.when.isoformat() if e.stamp.when else None,
                victim=e.victim,
                constraint=e.constraint,
                memcg=e.memcg,
                invoker=e.invoker,
                score=e.score,
                reaped=e.reaped,
                total_ram_kb=e.total_ram_kb,
                units=tuple(e.units),
            )
            for e in self._events
        ]
        return events, list(self._units)

    def event_times(self) -> list[datetime | None]:
        """Each event's time for filtering (a guessed year where the log printed none)."""
        return [e.stamp.when or e.stamp.yearless for e in self._events]


def _same_kill(first: _Stamp, second: _Stamp) -> bool:
    if first.text is None or second.text is None or first.text == second.text:
        return True
    if first.uptime is not None and second.uptime is not None:
        return abs(first.uptime - second.uptime) <= _SAME_KILL_SECONDS
    a_when = first.when or first.yearless
    b_when = second.when or second.yearless
    if a_when is not None and b_when is not None:
        return abs((a_when - b_when).total_seconds()) <= _SAME_KILL_SECONDS
    return False


def _merge_victim(old: Victim, new: Victim) -> Victim:
    updates = {
        name: getattr(new, name)
        for name in ("uid", "total_vm_kb", "anon_rss_kb", "file_rss_kb", "shmem_rss_kb",
                     "pgtables_kb", "oom_score_adj")
        if getattr(old, name) is None and getattr(new, name) is not None
    }
    return replace(old, **updates) if updates else old


# ---------------------------------------------------------------------------------- the verdict

_NODE_NAMES = {"node", "nodejs", "npm", "npm start", "npm run start", "next-server", "next-router-worker"}


def format_kb(kb: int) -> str:
    if kb >= 1024 * 1024:
        return f"{kb / 1024 / 1024:.1f} GiB"
    return f"{kb / 1024:.0f} MiB" if kb >= 1024 else f"{kb} KiB"


def attribute(name: str, settings: Settings, app_by_pid: Mapping[int, str], pid: int) -> str | None:
    """Which feature of the VM a killed process belongs to, for the verdict's last sentence."""
    attribution = settings.diagnose.attribution
    if name in attribution:
        return f"{name} is {attribution[name]}."
    if pid in app_by_pid:
        return f"{name} was the PM2 app {app_by_pid[pid]}."
    if name.startswith("next-"):
        return f"{name} is the frontend ({settings.apps.frontend.name}, port {settings.apps.frontend.port})."
    if name in _NODE_NAMES:
        apps = ", ".join(app.name for app in settings.app_roles().values())
        return f"{name} is one of the PM2 apps ({apps}): `vmkeeper status` shows which restarted."
    return None


def verdict_for(event: OomEvent, settings: Settings, app_by_pid: Mapping[int, str],
                local_ram_kb: int | None, failed_units: frozenset[str] = frozenset()) -> str:
    victim = event.victim
    when = f" at {event.time}" if event.time else ""
    sentence = f"{victim.name} (pid {victim.pid}) killed{when}"
    ram_kb = event.total_ram_kb or local_ram_kb
    if victim.rss_kb is not None:
        sentence += f" holding {format_kb(victim.rss_kb)} RSS"
        if ram_kb:
            sentence += f" of {format_kb(ram_kb)} RAM"
    elif ram_kb:
        sentence += f" on a machine with {format_kb(ram_kb)} RAM"
    if event.constraint == "memcg":
        where = event.memcg.oom_memcg if event.memcg and event.memcg.oom_memcg else None
        sentence += f", at the limit of memory cgroup {where}" if where else ", at a memory cgroup limit"
    elif event.constraint in ("cpuset", "mempolicy"):
        sentence += f", constrained by {event.constraint}"
    pm2_unit = settings.pm2.unit.removesuffix(".service") + ".service"
    for unit in event.units:
        if unit not in failed_units:
            sentence += f"; {unit} lost a process to the OOM killer"
        elif unit == pm2_unit:
            sentence += f"; {unit} failed with result oom-kill, taking its apps down"
        else:
            sentence += f"; {unit} failed with result oom-kill"
    sentence += "."
    attribution = attribute(victim.name, settings, app_by_pid, victim.pid)
    return f"{sentence} {attribution}" if attribution else sentence


def build_report(
    parser: OomParser,
    *,
    settings: Settings,
    source: str,
    skipped_sources: Iterable[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    local_ram_kb: int | None = None,
    app_by_pid: Mapping[int, str] | None = None,
) -> OomReport:
    """Freeze what the parser found into the report `diagnose oom` renders."""
    events, units = parser.finish()
    times = parser.event_times()
    kept = [
        event for event, when in zip(events, times, strict=True)
        if when is None or ((since is None or when >= since) and (until is None or when <= until))
    ]
    failed = frozenset(u.unit for u in units if u.result == "failed-oom-kill")
    apps = app_by_pid or {}
    final = [
        replace(event, verdict=verdict_for(event, settings, apps, local_ram_kb, failed))
        for event in kept
    ]
    verdict = " ".join(e.verdict for e in final) if final else "no OOM kill found."
    return OomReport(
        source=source,
        skipped_sources=tuple(skipped_sources),
        events=tuple(final),
        units=tuple(units),
        total_ram_kb=parser.total_ram_kb or local_ram_kb,
        lines_read=parser.lines,
        events_dropped=parser.dropped,
        verdict=verdict,
    )



# --------------------------------------------------------------------------------- the service

_RELATIVE = re.compile(r"^-(?P<n>\d+)\s*(?P<unit>s|sec|min|m|h|d)$")


def parse_time_bound(text: str, now: datetime | None = None) -> datetime:
    """`--since`/`--until` as journalctl takes them: ISO dates, today, yesterday, -24h, -30min.

    Raises UsageError naming the value if it is none of these.
    """
    now = now or _local_now()
    value = text.strip()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    if value == "now":
        return now
    if value == "today":
        return midnight
    if value == "yesterday":
        return midnight - timedelta(days=1)
    if value == "tomorrow":
        return midnight + timedelta(days=1)
    relative = _RELATIVE.match(value)
    if relative:
        seconds = {"s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400}[relative["unit"]]
        return now - timedelta(seconds=int(relative["n"]) * seconds)
    parsed = _parse_iso(value)
    if parsed is None:
        raise UsageError(
            f"cannot read the time {text!r}: use 'YYYY-MM-DD HH:MM[:SS]', today, yesterday "
            "or a relative time like -24h."
        )
    return parsed


def scan(lines: Iterable[str], now: datetime | None = None) -> OomParser:
    parser = OomParser(now=now)
    parser.feed_all(lines)
    return parser


def diagnose_oom(
    settings: Settings,
    *,
    since: str | None = None,
    until: str | None = None,
    file: Path | None = None,
    stdin: IO[Any] | None = None,
    app_by_pid: Mapping[int, str] | None = None,
    now: datetime | None = None,
) -> OomReport:
    """Find every OOM kill in the kernel log (a file, stdin, or this machine's own log).

    Raises UsageError for an unreadable --since/--until, KernelLogFileError for a file that
    cannot be read and KernelLogUnavailable when no source on this machine can.
    """
    now = now or _local_now()
    since_at = parse_time_bound(since, now) if since else None
    until_at = parse_time_bound(until, now) if until else None
    with kernel_log.open_kernel_log(
        since=since, until=until, file=file, stdin=stdin,
        timeout_s=settings.diagnose.read_timeout_s,
    ) as log:
        parser = OomParser(now=now)
        parser.feed_chunks(log.chunks)
        source, skipped, local = log.source, list(log.skipped), log.local
    return build_report(
        parser,
        settings=settings,
        source=source,
        skipped_sources=skipped,
        since=since_at,
        until=until_at,
        local_ram_kb=kernel_log.machine_ram_kb() if local else None,
        app_by_pid=app_by_pid,
    )
