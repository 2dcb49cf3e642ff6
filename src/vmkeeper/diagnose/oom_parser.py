"""The kernel-log parser: OOM kills from the kernel's own lines, 3.x to 6.x, streamed.

The parser reads one line at a time and keeps only what an unfinished event still needs (a few
pending invoker, selection and constraint lines, bounded), so a log of any size is scanned in
constant memory; the events found are the output. Lines may come behind any prefix journalctl,
dmesg and syslog print (kernel_time.py).

The input is hostile by assumption (anything can write to the kernel log, and `diagnose oom -`
reads whatever is piped in), so every step is linear in the line's length: the line grammar
(oom_lines.py) runs on RE2, everything here is substring search and single passes. A 1 MB line
made to trip a backtracking engine parses in milliseconds (tests/diagnose/test_oom_hostile.py).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from vmkeeper.diagnose import oom_lines
from vmkeeper.diagnose.kernel_time import Stamp, local_now, split_prefix
from vmkeeper.diagnose.oom_model import Invoker, Memcg, OomEvent, ParsedLog, UnitOom, Victim

# A cheap test every line passes before any pattern runs: nearly all of a kernel log is noise, and
# every line we care about carries one of these words (case as the kernel prints them).
_KEYWORDS = ("oom", "OOM", "Kill", "killed as a result", "pages RAM")
_KEYWORD_BYTES = tuple(word.encode() for word in _KEYWORDS)
_MAX_LINE_BYTES = 1 << 20
# A selection's own `Killed process` line follows within a line or two (another CPU's printk
# may slip in between).
_SELECTION_REACH = 3
_PHRASES = ("invoked oom-killer", "oom-kill:", "or sacrifice child", "Killed process",
            "oom_reaper: reaped", "killed as a result", "OOM killer", "'oom-kill'", "pages RAM")

# Bounds that keep memory flat on hostile input (a crash-looping container can log a kill a second).
_MAX_PENDING = 16
_MAX_RECENT_KEYS = 1024
MAX_EVENTS = 10_000
# Two kill lines for the same pid and name this close are one kill logged twice.
_SAME_KILL_SECONDS = 5.0


@dataclass
class _Pending:
    """An `oom-kill:` summary line whose `Killed process` line has not come yet."""

    stamp: Stamp
    victim: Victim
    constraint: str
    memcg: Memcg | None
    seq: int | None = None


@dataclass
class _Open:
    """An event being assembled; frozen into an OomEvent at the end."""

    seq: int
    stamp: Stamp
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


def _merge_victim(old: Victim, new: Victim) -> Victim:
    updates = {
        name: getattr(new, name)
        for name in ("uid", "total_vm_kb", "anon_rss_kb", "file_rss_kb", "shmem_rss_kb",
                     "pgtables_kb", "oom_score_adj")
        if getattr(old, name) is None and getattr(new, name) is not None
    }
    return replace(old, **updates) if updates else old


def _clean(line: str) -> str:
    # RE2 reads UTF-8: a lone surrogate (a str built from undecodable bytes) becomes U+FFFD.
    return line if line.isascii() else line.encode("utf-8", "replace").decode("utf-8")


class OomParser:
    """Feed lines in log order; ``finish`` returns what was found. Memory stays bounded."""

    def __init__(self, now: datetime | None = None, max_events: int = MAX_EVENTS) -> None:
        self._now = now or local_now()
        self._max_events = max_events
        self._contexts: deque[_Context] = deque(maxlen=_MAX_PENDING)
        # `oom-kill:` lines by pid, waiting for their `Killed process` line.
        self._constraints: OrderedDict[int, _Pending] = OrderedDict()
        self._selection: tuple[Stamp, oom_lines.Selection] | None = None
        self._events: list[_Open] = []
        self._by_key: OrderedDict[tuple[int, str], _Open] = OrderedDict()
        self._units: list[UnitOom] = []
        self._total_ram_kb: int | None = None
        self._seq = 0
        self._line_number = 0  # of the line being handled, to tell which came right after which
        self._selected_at = 0
        self._lines = 0
        self._dropped = 0

    def feed_all(self, lines: Iterable[str]) -> None:
        """Feed text lines (with or without their newline)."""
        # The hot loop of a large scan: no attribute lookups per line.
        handle = self._feed_candidate
        count = self._lines
        for line in lines:
            count += 1
            if any(word in line for word in _KEYWORDS):
                self._line_number = count
                handle(line)
        self._lines = count

    def feed_chunks(self, chunks: Iterable[bytes]) -> None:
        """Feed raw log bytes in chunks of any size: the fast path for files and pipes."""
        tail: list[bytes] = []  # a line still open, in pieces (joined once: no quadratic copy)
        held = 0
        for chunk in chunks:
            if not chunk:
                continue
            cut = chunk.rfind(b"\n") + 1
            if cut == 0 and held + len(chunk) < _MAX_LINE_BYTES:
                tail.append(chunk)
                held += len(chunk)
                continue
            if cut == 0:  # a runaway line without newline: take it as one line
                cut = len(chunk)
            self._scan_block(b"".join([*tail, chunk[:cut]]))
            tail, held = ([chunk[cut:]], len(chunk) - cut) if cut < len(chunk) else ([], 0)
        if held:
            self._scan_block(b"".join([*tail, b"\n"]))

    def _scan_block(self, block: bytes) -> None:
        # Find the few candidate lines with bytes.find (memchr speed) instead of running a
        # pattern over every line: nearly all of a kernel log is noise.
        base = self._lines
        self._lines += block.count(b"\n")
        starts: set[int] = set()
        for word in _KEYWORD_BYTES:
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
        stamp, message = split_prefix(_clean(line), self._now)
        if "Mem-Info" not in message and "pages RAM" in message:
            self._on_pages_ram(message)
        elif "invoked oom-killer" in message:
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

    def _on_pages_ram(self, message: str) -> None:
        kb = oom_lines.pages_ram_kb(message)
        if kb is not None:
            self._total_ram_kb = self._context().total_ram_kb = kb

    def _on_invoker(self, message: str) -> None:
        invoker = oom_lines.invoker(message)
        if invoker is not None:
            self._contexts.append(_Context(invoker=invoker, total_ram_kb=None))

    def _on_constraint(self, stamp: Stamp, message: str) -> None:
        line = oom_lines.constraint(message)
        if line is None:
            return
        if line.victim is not None:
            self._seq += 1
            self._constraints[line.victim.pid] = _Pending(
                stamp, line.victim, line.constraint, line.memcg, self._seq)
            while len(self._constraints) > _MAX_PENDING:
                self._flush_constraint(self._constraints.popitem(last=False)[1])
        context = self._context()
        context.constraint = line.constraint
        context.memcg = line.memcg or context.memcg

    def _on_task_in(self, message: str) -> None:
        memcg = oom_lines.task_in(message)
        if memcg is not None:
            context = self._context()
            context.memcg = memcg
            context.constraint = "memcg"

    def _on_selection(self, stamp: Stamp, message: str) -> None:
        selection = oom_lines.selection(message)
        if selection is None:
            return
        self._flush_selection()
        self._selected_at = self._line_number
        self._selection = (stamp, selection)

    def _flush_constraint(self, pending: _Pending) -> None:
        # The kernel prints `oom-kill:` only once it has chosen its victim: a kill, even when
        # the `Killed process` line is cut from the excerpt.
        self._record(pending.stamp, pending.victim, pending.constraint, score=None,
                     memcg=pending.memcg, seq=pending.seq)

    def _flush_selection(self) -> None:
        # A selection never followed by its `Killed process` line (a cut excerpt) is still a kill.
        held, self._selection = self._selection, None
        if held is not None:
            stamp, selection = held
            self._record(stamp, Victim(name=selection.name, pid=selection.pid),
                         selection.constraint, score=selection.score)

    def _on_killed(self, stamp: Stamp, message: str) -> None:
        kill = oom_lines.killed(message)
        if kill is None:
            return
        score, constraint = None, kill.constraint
        if self._selection is not None:
            selected_stamp, selection = self._selection
            # The selection names the parent; the kill on the very next line may be a sacrificed
            # child. Any later kill belongs to another OOM: the selection was a kill of its own.
            adjacent = self._line_number - self._selected_at <= _SELECTION_REACH
            if (adjacent or selection.pid == kill.victim.pid) and \
                    selected_stamp.within(stamp, _SAME_KILL_SECONDS):
                score, constraint = selection.score, constraint or selection.constraint
                self._selection = None
            else:
                self._flush_selection()
        self._record(stamp, kill.victim, constraint, score=score)

    def _record(self, stamp: Stamp, victim: Victim, constraint: str | None,
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
        if existing is not None and existing.stamp.within(stamp, _SAME_KILL_SECONDS):
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
            total_ram_kb=context.total_ram_kb or self._total_ram_kb,
        )
        if len(self._events) >= self._max_events:
            self._dropped += 1
            return
        self._events.append(event)
        self._by_key[key] = event
        self._by_key.move_to_end(key)
        while len(self._by_key) > _MAX_RECENT_KEYS:
            self._by_key.popitem(last=False)

    def _on_reaped(self, stamp: Stamp, message: str) -> None:
        key = oom_lines.reaped(message)
        if key is None:
            return
        existing = self._by_key.get(key)
        if existing is None:
            # The reaper only runs on a victim: its line alone proves a kill whose line we missed.
            self._record(stamp, Victim(name=key[1], pid=key[0]), None, score=None)
            existing = self._by_key.get(key)
        if existing is not None:
            existing.reaped = True

    def _on_unit(self, stamp: Stamp, message: str) -> None:
        found = oom_lines.unit(message)
        if found is None:
            return
        unit, result = found
        record = UnitOom(unit=unit, time=stamp.text, result=result)
        if record in self._units[-_MAX_PENDING:]:
            return
        if len(self._units) < self._max_events:
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

    def finish(self) -> ParsedLog:
        """Close what is still pending and return every event, in the order the kernel chose."""
        self._flush_selection()
        while self._constraints:
            self._flush_constraint(self._constraints.popitem(last=False)[1])
        self._events.sort(key=lambda e: e.seq)
        events = tuple(
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
        )
        return ParsedLog(
            events=events,
            event_times=tuple(e.stamp.moment for e in self._events),
            units=tuple(self._units),
            total_ram_kb=self._total_ram_kb,
            lines_read=self._lines,
            events_dropped=self._dropped,
        )


def parse_kernel_log(log: bytes | str | Iterable[str], *, now: datetime | None = None,
                     max_events: int = MAX_EVENTS) -> ParsedLog:
    """Every OOM kill in a kernel log: raw bytes, one text, or text lines in order.

    The one entry point for callers, benchmarks and fuzzers: any input is accepted (bytes need
    not be UTF-8) and parsed in time linear in its size; nothing raises.
    """
    parser = OomParser(now=now, max_events=max_events)
    if isinstance(log, bytes):
        parser.feed_chunks([log])
    elif isinstance(log, str):
        parser.feed_chunks([log.encode("utf-8", "replace")])
    else:
        parser.feed_all(log)
    return parser.finish()
