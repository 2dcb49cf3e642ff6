"""The verdict of `diagnose oom`: what each kill means for this VM, in one sentence.

A sentence names the victim, the memory it held against the machine's RAM, the limit that was
hit, the systemd units that lost processes (pm2-ubuntu failing takes every app down), and which
feature of the VM the process belongs to (the settings' attribution table, the PM2 app by pid).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from vmkeeper.diagnose.oom_model import OomEvent, OomReport, ParsedLog, UnitResult
from vmkeeper.settings import Settings

_NODE_NAMES = {"node", "nodejs", "npm", "npm start", "npm run start", "next-server",
               "next-router-worker"}


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
        frontend = settings.apps.frontend
        return f"{name} is the frontend ({frontend.name}, port {frontend.port})."
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
        sentence += (f", at the limit of memory cgroup {where}" if where
                     else ", at a memory cgroup limit")
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
    parsed: ParsedLog,
    *,
    settings: Settings,
    source: str,
    skipped_sources: Iterable[str] = (),
    since: datetime | None = None,
    until: datetime | None = None,
    local_ram_kb: int | None = None,
    app_by_pid: Mapping[int, str] | None = None,
) -> OomReport:
    """The report `diagnose oom` renders: the events in the window, each with its verdict."""
    kept = [
        event for event, when in zip(parsed.events, parsed.event_times, strict=True)
        if when is None or ((since is None or when >= since) and (until is None or when <= until))
    ]
    failed = frozenset(u.unit for u in parsed.units if u.result is UnitResult.FAILED)
    apps = app_by_pid or {}
    final = tuple(
        replace(event, verdict=verdict_for(event, settings, apps, local_ram_kb, failed))
        for event in kept
    )
    return OomReport(
        source=source,
        skipped_sources=tuple(skipped_sources),
        events=final,
        units=parsed.units,
        total_ram_kb=parsed.total_ram_kb or local_ram_kb,
        lines_read=parsed.lines_read,
        events_dropped=parsed.events_dropped,
        verdict=" ".join(e.verdict for e in final) if final else "no OOM kill found.",
    )
