"""View models and sessions, without HTTP."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.dashboard import fakes
from tests.support.clock import FakeClock
from vmkeeper.agent import auth
from vmkeeper.agent.auth import Scope
from vmkeeper.dashboard import views
from vmkeeper.dashboard.session import Sessions, csrf_ok

NOW = datetime(2026, 12, 1, 12, 30, tzinfo=UTC)


def test_every_chain_layer_gets_the_worst_colour_of_its_checks() -> None:
    view = views.overview(fakes.health(frontend_down=True), fakes.status(), "12:00:00 UTC")
    colours = {layer.name: layer.colour for layer in view.layers}
    assert colours["PM2 apps"] is views.Colour.RED
    assert colours["Apache"] is views.Colour.GREEN
    assert colours["dump"] is views.Colour.GREEN
    assert view.first_broken == "PM2 apps" and view.since == "12:00:00 UTC"
    assert [h.colour for h in view.host] == [views.Colour.AMBER, views.Colour.GREEN]
    assert view.apps[0].memory == "150.0 MB" and view.apps[0].restarts == 2


def test_since_moves_only_when_the_verdict_changes() -> None:
    since = views.Since()
    first = since.note(fakes.health(True), NOW)
    assert since.note(fakes.health(True), NOW + timedelta(minutes=5)) == first
    assert since.note(fakes.health(False), NOW + timedelta(minutes=6)) == "12:36:00 UTC"


def test_release_rows_and_preflight() -> None:
    rows = views.releases(fakes.releases(), NOW)
    assert [r.active for r in rows] == [True, False, False]
    assert rows[1].age == "2 h ago" and rows[1].size == "80.0 MB"
    assert rows[2].rollback_blocked and "build" in rows[2].rollback_blocked
    check = views.preflight(rows[1], fakes.NEW, "", [".env", ".env.local"], [".env"])
    assert check.env_differs == (".env.local",) and check.blocked is None
    assert check.subject == "(commit subject unknown)"


def test_sizes_and_ages() -> None:
    assert views.size(None) == "—" and views.size(512) == "512 B"
    assert views.size(3 * 1024**3) == "3.0 GB"
    assert views.age(NOW - timedelta(days=3), NOW) == "3 d ago"
    assert views.age(NOW + timedelta(seconds=5), NOW) == "0 s ago"


def test_sessions_expire_and_csrf_compares(tmp_path: Path) -> None:
    clock = FakeClock()
    sessions = Sessions(tmp_path, ttl_s=60, now=clock)
    token = auth.add(tmp_path, "ops", Scope.OPERATE).token
    assert sessions.sign_in("vmk_wrong") is None
    session = sessions.sign_in(token)
    assert session is not None and session.can(Scope.OPERATE) and not session.can(Scope.ADMIN)
    assert csrf_ok(session, session.csrf) and not csrf_ok(session, None)
    assert not csrf_ok(session, session.csrf + "x")
    assert sessions.get(session.id) == session
    clock.advance(61)
    assert sessions.get(session.id) is None
