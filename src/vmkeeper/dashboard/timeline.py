"""The incidents page's one axis: every kind of event the services record, newest first, each
with the page or file that backs it. Pure functions over the services' own records — the
deploy history, the audit log, the watcher's incidents, `diagnose oom`'s report and the changes
the agent's warm gather saw — nothing here reads a log or judges a state.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

from vmkeeper.dashboard.changes import Change, ChangeKind
from vmkeeper.diagnose.oom_model import OomReport
from vmkeeper.watch.store import Incident


class EventKind(str, Enum):
    DEPLOY = "deploy"
    ROLLBACK = "rollback"
    RESTART = "restart"
    HEALTH = "health"
    INCIDENT = "incident"
    RECOVERY = "recovery"
    OOM = "oom kill"
    ALERT = "alert"
    OPERATOR = "operator action"


@dataclass(frozen=True)
class TimelineEvent:
    at: datetime | None  # None: the source gave no full date (a dmesg line without one)
    kind: EventKind
    text: str
    evidence: str | None = None  # a page or file that backs the line
    ok: bool = True

    @property
    def shown(self) -> str:
        return self.at.strftime("%Y-%m-%d %H:%M:%S UTC") if self.at else "time unknown"


def when(value: object) -> datetime | None:
    """A record's time as UTC: epoch seconds (the watcher) or ISO 8601 (history, audit,
    journald's kernel lines); anything else is unknown."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            return None
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return None


_ALERT_TITLES = {"open": "incident opened", "gave_up": "vmkeeper gave up",
                 "resolved": "incident resolved"}


def timeline(history: Iterable[Mapping[str, Any]], audit: Iterable[Mapping[str, Any]],
             incidents: Iterable[Incident] = (), oom: OomReport | None = None,
             changes: Iterable[Change] = (), sinks: Iterable[str] = ()
             ) -> tuple[TimelineEvent, ...]:
    """Newest first; events whose time is unknown last, in their source's order."""
    events = [_history_event(r) for r in history]
    events += [_audit_event(r) for r in audit]
    chosen = tuple(sinks)
    for incident in incidents:
        events += _incident_events(incident, chosen)
    if oom is not None:
        events += [TimelineEvent(when(e.timestamp), EventKind.OOM, e.verdict or
                                 f"the kernel killed {e.victim.name}", f"#oom-{n}", False)
                   for n, e in enumerate(oom.events)]
    events += [_change_event(c) for c in changes]
    known = sorted((e for e in events if e.at), key=lambda e: e.at or datetime.min,
                   reverse=True)
    return (*known, *(e for e in events if e.at is None))


def _history_event(record: Mapping[str, Any]) -> TimelineEvent:
    """One history.jsonl record: {"command": deploy|rollback, "phase": started|finished,
    "result": ok|failed|reverted|interrupted, "release", "error", ...}."""
    command = str(record.get("command") or "deploy")
    kind = EventKind.ROLLBACK if command == "rollback" else EventKind.DEPLOY
    phase = str(record.get("phase") or "")
    result = str(record.get("result") or "")
    release = str(record.get("release") or record.get("branch") or "")
    words = [command, release, phase if phase != "finished" else "", result,
             str(record.get("error") or "")]
    return TimelineEvent(when(record.get("time")), kind, " ".join(w for w in words if w),
                         f"/releases#{release}" if release else "/releases",
                         result in ("", "ok"))


def _audit_event(record: Mapping[str, Any]) -> TimelineEvent:
    """One audit record: {"who", "kind" (deploy|rollback|recover), "body", "before", "after",
    "result" (the operation's final state), "operation" (its id), "seq"}."""
    body = record.get("body") if isinstance(record.get("body"), Mapping) else {}
    target = body.get("release") or body.get("branch") or "" if body else ""
    moved = f"{record.get('before')} → {record.get('after')}" if record.get("after") else ""
    result = str(record.get("result", ""))
    words = [f"{record.get('who', '?')}:", str(record.get("kind") or record.get("operation")),
             str(target), result, moved]
    return TimelineEvent(when(record.get("at")), EventKind.OPERATOR,
                         " ".join(w for w in words if w),
                         f"/operations/{record['operation']}" if record.get("operation") else None,
                         result in ("succeeded", "ok", "queued", ""))


def _incident_events(incident: Incident, sinks: tuple[str, ...]) -> list[TimelineEvent]:
    """An incident's opening, each recovery attempt, its end, and the alerts the watcher sends
    at those moments (watch/loop.py: on open or give-up, and on resolve) to the sinks set."""
    page = f"/incidents/{incident.id}"
    events = [TimelineEvent(when(incident.opened_at), EventKind.INCIDENT,
                            f"incident {incident.id} opened: {incident.diagnosis}", page, False)]
    for action in incident.actions:
        steps = ", ".join(str(s.get("command", "")) for s in action.get("steps", [])
                          if isinstance(s, Mapping))
        events.append(TimelineEvent(
            when(action.get("at")), EventKind.RECOVERY,
            f"recovery {'succeeded' if action.get('ok') else 'failed'}"
            f"{': ' + steps if steps else ''} ({action.get('diagnosis', '')})", page,
            bool(action.get("ok"))))
    moments = [("gave_up" if incident.state == "gave_up" and not incident.actions else "open",
                incident.opened_at)]
    if incident.state == "resolved" and incident.resolved_at is not None:
        took = (f" after {incident.seconds_to_recover:.0f} s"
                if incident.seconds_to_recover is not None else "")
        events.append(TimelineEvent(when(incident.resolved_at), EventKind.INCIDENT,
                                    f"incident {incident.id} resolved{took}", page, True))
        moments.append(("resolved", incident.resolved_at))
    elif incident.state == "gave_up" and incident.actions:
        last = incident.actions[-1].get("at", incident.opened_at)
        events.append(TimelineEvent(when(last), EventKind.INCIDENT,
                                    f"incident {incident.id}: vmkeeper gave up, a person is "
                                    "needed", page, False))
        moments.append(("gave_up", last))
    for kind, at in moments:
        sent = (f"alert “{_ALERT_TITLES[kind]}” sent to {', '.join(sinks)}" if sinks else
                f"alert “{_ALERT_TITLES[kind]}” not sent: no alert sink is set "
                "(alerts.webhook_url, alerts.smtp_host)")
        events.append(TimelineEvent(when(at), EventKind.ALERT, sent, page, bool(sinks)))
    return events


def _change_event(change: Change) -> TimelineEvent:
    if change.kind is ChangeKind.RESTART:
        return TimelineEvent(change.at, EventKind.RESTART, change.text,
                             f"/logs?app={change.app}" if change.app else "/logs", change.ok)
    return TimelineEvent(change.at, EventKind.HEALTH, change.text,
                         f"/incidents/health/{change.seq}", change.ok)
