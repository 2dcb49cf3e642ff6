"""The incidents timeline: every source on one axis, each event linked to its evidence."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.dashboard import fakes
from vmkeeper.dashboard.changes import ChangeKind, Changes
from vmkeeper.dashboard.timeline import EventKind, timeline, when
from vmkeeper.health.model import Status

NOW = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)


def test_timeline_merges_history_and_audit_newest_first() -> None:
    events = timeline(
        [{"time": "2026-12-01T10:00:00Z", "command": "deploy", "phase": "finished",
          "release": "r1", "result": "failed", "error": "npm ci failed"},
         {"time": "2026-12-01T11:00:00Z", "command": "rollback", "phase": "finished",
          "release": "r0", "result": "ok"}],
        [{"seq": 3, "at": "2026-12-01T10:30:00Z", "who": "ops", "kind": "deploy"}])
    assert [e.kind for e in events] == [EventKind.ROLLBACK, EventKind.OPERATOR,
                                        EventKind.DEPLOY]
    assert not events[2].ok and "npm ci failed" in events[2].text


def test_an_audit_record_reads_as_who_did_what_and_links_the_operation() -> None:
    (event,) = timeline([], [{"seq": 4, "at": "2026-12-01T12:00:00Z", "who": "alice",
                                    "operation": "op9", "kind": "rollback",
                                    "body": {"release": "r0"}, "before": "r1", "after": "r0",
                                    "result": "succeeded"}])
    assert event.text == "alice: rollback r0 succeeded r1 → r0"
    assert event.ok and event.evidence == "/operations/op9"
    (failed,) = timeline([], [{"at": "x", "who": "bob", "kind": "deploy",
                                     "result": "failed"}])
    assert not failed.ok and failed.evidence is None


def test_every_source_lands_on_one_axis_with_its_evidence() -> None:
    changes = Changes()
    changes.note(fakes.health(), fakes.status(restarts=2), NOW - timedelta(minutes=20))
    changes.note(fakes.health(frontend_down=True), fakes.status(restarts=5),
                 NOW - timedelta(minutes=10))
    events = timeline(
        [{"time": "2026-12-01T12:00:00Z", "command": "deploy", "phase": "finished",
          "release": fakes.NEW, "result": "ok"}],
        [{"seq": 1, "at": "2026-12-01T12:05:00Z", "who": "ops", "operation": "op1",
          "kind": "rollback", "body": {"release": fakes.OLD}, "result": "succeeded"}],
        [fakes.incident(["/e/bundle.tar.gz"])], fakes.oom(), changes.recent(), ("webhook",))
    kinds = [e.kind for e in events]
    assert kinds == [EventKind.RESTART, EventKind.HEALTH,  # 12:20, observed by the agent
                     EventKind.OPERATOR, EventKind.DEPLOY,  # 12:05, 12:00
                     EventKind.INCIDENT, EventKind.ALERT,  # resolved 11:40:30 and its alert
                     EventKind.RECOVERY, EventKind.RECOVERY,  # 11:40:25, 11:40:10
                     EventKind.INCIDENT, EventKind.ALERT,  # opened 11:40 and its alert
                     EventKind.OOM]  # 11:30
    assert all(e.at and e.at.tzinfo for e in events)
    evidence = {e.kind: e.evidence for e in events}
    assert evidence[EventKind.RESTART] == "/logs?app=frontend-dev"
    assert evidence[EventKind.HEALTH] == "/incidents/health/2"
    assert evidence[EventKind.OOM] == "#oom-0"
    assert evidence[EventKind.DEPLOY] == f"/releases#{fakes.NEW}"
    assert evidence[EventKind.INCIDENT] == evidence[EventKind.ALERT] == "/incidents/1796125200-1"
    assert "restarted 3 times (PM2 restarts 2 → 5)" in events[0].text
    assert "PM2 apps" in events[1].text and not events[1].ok
    assert events[-1].text == fakes.OOM_VERDICT
    assert "resolved after 30 s" in events[4].text
    assert events[5].text == "alert “incident resolved” sent to webhook" and events[5].ok
    assert "pm2 start frontend-dev" in events[7].text and not events[7].ok


def test_without_a_sink_an_alert_says_it_was_not_sent() -> None:
    gave_up = fakes.incident([])
    gave_up = type(gave_up)(gave_up.id, "gave_up", gave_up.opened_at, gave_up.diagnosis,
                            actions=gave_up.actions[:1])
    events = timeline([], [], [gave_up])
    alerts = [e for e in events if e.kind is EventKind.ALERT]
    assert [a.text.split("”")[0] for a in alerts] == ["alert “vmkeeper gave up",
                                                      "alert “incident opened"]
    assert all("no alert sink is set" in a.text and not a.ok for a in alerts)
    assert any("gave up, a person is needed" in e.text for e in events)


def test_restart_counts_that_fall_are_a_new_baseline_and_health_back_up_is_ok() -> None:
    changes = Changes()
    changes.note(fakes.health(True), fakes.status(restarts=7), NOW)
    changes.note(fakes.health(True), fakes.status(restarts=0), NOW)  # delete + start
    changes.note(fakes.health(False), fakes.status(restarts=1), NOW)
    seen = changes.recent()
    assert [c.kind for c in seen] == [ChangeKind.RESTART, ChangeKind.HEALTH]
    assert "once (PM2 restarts 0 → 1)" in seen[0].text
    assert seen[1].ok and seen[1].report is not None
    assert seen[1].report.status is Status.WARN
    assert changes.get(seen[1].seq) == seen[1] and changes.get(99) is None


def test_times_are_read_from_each_sources_spelling() -> None:
    assert when(0) == datetime(1970, 1, 1, tzinfo=UTC)
    assert when("2026-12-01T10:00:00Z") == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert when("2026-12-01T11:00:00+01:00") == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert when("2026-12-01T10:00:00") == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert when("Dec 01 10:00:00") is None and when(None) is None and when(True) is None
    assert when(1e300) is None
    (dated, undated) = timeline([{"time": "?", "command": "deploy"}],
                                [{"at": "2026-12-01T10:00:00Z", "who": "a", "kind": "deploy"}])
    assert dated.shown == "2026-12-01 10:00:00 UTC" and undated.shown == "time unknown"
