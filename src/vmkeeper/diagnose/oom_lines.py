"""What one kernel or systemd line says about an OOM kill: the line grammar, 3.x to 6.x.

Each function reads one message (its prefix already taken off by kernel_time.split_prefix) and
returns what it states, or None when the line is not that kind. The assembly of lines into events
is oom_parser.py's. Every pattern runs on RE2 (linear_regex.py) and every number is bounded, so
a hostile line costs time linear in its length; none of these raises.
"""

from __future__ import annotations

from dataclasses import dataclass

from vmkeeper import linear_regex
from vmkeeper.diagnose.oom_model import Invoker, Memcg, UnitResult, Victim

_INVOKER = linear_regex.compile(
    r"^(?P<name>.+?) invoked oom-killer: gfp_mask=(?P<gfp>0x[0-9a-fA-F]+)(?:\([^)]*\))?,"
    r"(?: nodemask=\S+,)?\s*order=(?P<order>-?\d+),(?: oom_adj=-?\d+,)?"
    r"\s*oom_(?:score_)?adj=(?P<adj>-?\d+)"
)
_SELECT = linear_regex.compile(
    r"(?P<scope>Memory cgroup out of memory|Out of memory(?: \([^)]*\))?): Kill process "
    r"(?P<pid>\d+) \((?P<name>.+?)\) score (?P<score>-?\d+) or sacrifice child"
)
# The name ends at the first `)` followed by a space, a comma or the end: comm may hold `)`.
_KILLED = linear_regex.compile(
    r"(?:(?P<scope>Memory cgroup out of memory|Out of memory(?: \([^)]*\))?): )?"
    r"Killed process (?P<pid>\d+)(?:, UID (?P<uid>\d+),)? \((?P<name>.+?)\)"
    r"(?P<rest>(?:[ ,].*)?)$"
)
_REAPED = linear_regex.compile(
    r"oom_reaper: reaped process (?P<pid>\d+) \((?P<name>.+?)\)(?:[ ,]|$)"
)
_CONSTRAINT = linear_regex.compile(r"oom-kill:constraint=(?P<constraint>\w+)(?P<rest>.*)$")
_TASK_IN = linear_regex.compile(
    r"Task in (?P<task>\S+) killed as a result of limit of (?P<oom>\S+)"
)
_PAGES_RAM = linear_regex.compile(r"^(?P<pages>\d+) pages RAM\s*$")
_UNIT = linear_regex.compile(
    r"(?P<unit>[\w@.:\\-]+\.(?:service|scope|slice|socket|mount|swap|timer)): "
    r"(?P<what>A process of this unit has been killed by the OOM killer|"
    r"The kernel OOM killer killed some processes in this unit|"
    r"Failed with result 'oom-kill')\."
)
_FIELDS = linear_regex.compile(
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
# The kernel prints `pages RAM` in pages; every architecture the runbook's VMs run uses 4 KiB.
_PAGE_KB = 4
# Kernel numbers have at most 20 digits; a longer run is not one (and int() refuses 4,300+).
_MAX_DIGITS = 20
# The kernel's summary has about ten fields; past this many commas the rest is one value.
_MAX_CONSTRAINT_FIELDS = 64


@dataclass(frozen=True)
class Selection:
    """`Kill process N (name) score S or sacrifice child`: the kernel's choice, before the kill."""

    pid: int
    name: str
    score: int
    constraint: str | None


@dataclass(frozen=True)
class Killed:
    """`Killed process N (name) total-vm:…`: the kill itself, with the memory the victim held."""

    victim: Victim
    constraint: str | None


@dataclass(frozen=True)
class ConstraintLine:
    """`oom-kill:constraint=…,task_memcg=…,task=…,pid=…`: the summary the kernel prints first."""

    constraint: str
    memcg: Memcg | None
    victim: Victim | None  # when the line names the task (kernels from 4.19)


def _number(text: str | None) -> int | None:
    return int(text) if text and len(text.lstrip("-")) <= _MAX_DIGITS else None


def _scope_constraint(scope: str | None) -> str | None:
    if scope is None:
        return None
    return "memcg" if scope.startswith("Memory cgroup") else "global"


def pages_ram_kb(message: str) -> int | None:
    match = _PAGES_RAM.match(message.strip())
    pages = _number(match.group("pages")) if match else None
    return pages * _PAGE_KB if pages is not None else None


def invoker(message: str) -> Invoker | None:
    match = _INVOKER.search(message)
    if match is None:
        return None
    order, adj = _number(match.group("order")), _number(match.group("adj"))
    if order is None or adj is None:
        return None
    return Invoker(name=match.group("name").strip(), gfp_mask=match.group("gfp"), order=order,
                   oom_score_adj=adj)


def _is_field_name(text: str) -> bool:
    return text.isascii() and text.islower() and text.replace("_", "").isalpha()


def _constraint_fields(rest: str) -> dict[str, str]:
    # Values can hold commas (mems_allowed=0,2): a comma starts a new field only before `key=`
    # or a bare flag (`global_oom`). One pass over a bounded number of parts, each joined once.
    groups: list[list[str]] = []
    for part in rest.lstrip(",").split(",", _MAX_CONSTRAINT_FIELDS):
        name, eq, _value = part.partition("=")
        if not groups or _is_field_name(name if eq else part):
            groups.append([part])
        else:
            groups[-1].append(part)
    fields: dict[str, str] = {}
    for parts in groups:
        key, _eq, value = ",".join(parts).partition("=")
        fields[key.strip()] = value.strip()
    return fields


def constraint(message: str) -> ConstraintLine | None:
    match = _CONSTRAINT.search(message)
    if match is None:
        return None
    fields = _constraint_fields(match.group("rest"))
    word = match.group("constraint")
    memcg = None
    if fields.get("oom_memcg") or fields.get("task_memcg"):
        memcg = Memcg(fields.get("oom_memcg") or None, fields.get("task_memcg") or None)
    pid_text, uid_text = fields.get("pid", ""), fields.get("uid", "")
    pid = _number(pid_text) if pid_text.isdigit() else None
    victim = None
    if pid is not None:
        victim = Victim(name=fields.get("task", "?"), pid=pid,
                        uid=_number(uid_text) if uid_text.isdigit() else None)
    return ConstraintLine(_CONSTRAINTS.get(word, word.lower()), memcg, victim)


def task_in(message: str) -> Memcg | None:
    """cgroup v1's `Task in /A killed as a result of limit of /B` (kernels before 4.19)."""
    match = _TASK_IN.search(message)
    return Memcg(match.group("oom"), match.group("task")) if match else None


def selection(message: str) -> Selection | None:
    match = _SELECT.search(message)
    if match is None:
        return None
    pid, score = _number(match.group("pid")), _number(match.group("score"))
    if pid is None or score is None:
        return None
    return Selection(pid, match.group("name"), score, _scope_constraint(match.group("scope")))


def killed(message: str) -> Killed | None:
    """The kill line; None for the kernel's `…sharing same memory` notes about other tasks."""
    match = _KILLED.search(message)
    if match is None or "sharing same memory" in match.group("rest"):
        return None
    pid = _number(match.group("pid"))
    if pid is None:
        return None
    fields: dict[str, int] = {}
    for field in _FIELDS.finditer(match.group("rest")):
        value = _number(field.group("val"))
        if value is not None:
            fields[_FIELD_NAMES[field.group("key")]] = value
    uid = _number(match.group("uid"))
    if uid is not None:
        fields["uid"] = uid
    victim = Victim(name=match.group("name"), pid=pid, **fields)
    return Killed(victim, _scope_constraint(match.group("scope")))


def reaped(message: str) -> tuple[int, str] | None:
    """`oom_reaper: reaped process N (name)`: the pid and name whose memory was taken back."""
    match = _REAPED.search(message)
    pid = _number(match.group("pid")) if match else None
    return (pid, match.group("name")) if match and pid is not None else None


def unit(message: str) -> tuple[str, UnitResult] | None:
    """systemd's lines about a unit that lost processes to the OOM killer."""
    match = _UNIT.search(message)
    if match is None:
        return None
    failed = match.group("what").startswith("Failed")
    return match.group("unit"), UnitResult.FAILED if failed else UnitResult.PROCESS_KILLED
