"""The dashboard through FastAPI's TestClient: sessions, CSRF, scopes, headers, pages."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from markupsafe import escape

from tests.dashboard.fakes import NEW, OLD, OOM_VERDICT, Fake
from tests.support.clock import FakeClock
from vmkeeper.agent import auth
from vmkeeper.agent.auth import Scope
from vmkeeper.dashboard import routes
from vmkeeper.dashboard.session import COOKIE, Sessions


@pytest.fixture
def fake() -> Fake:
    return Fake()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def client(tmp_path: Path, fake: Fake, clock: FakeClock) -> Iterator[TestClient]:
    app = FastAPI()
    board = routes.install(app, Sessions(tmp_path), fake.sources(), clock=clock)
    yield TestClient(app)
    board.warm.stop()


@pytest.fixture
def board(client: TestClient) -> routes.Dashboard:
    found: routes.Dashboard = client.app.state.dashboard  # type: ignore[attr-defined]
    return found


def sign_in(client: TestClient, state: Path, scope: Scope, name: str = "ops") -> str:
    token = auth.add(state, name, scope).token
    response = client.post("/login", data={"token": token}, follow_redirects=False)
    assert response.status_code == 303
    return response.headers["set-cookie"]


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def test_no_session_shows_the_sign_in_page_with_strict_headers(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200 and "Sign in" in response.text
    csp = response.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert response.headers["x-frame-options"] == "DENY"
    assert "<script>" not in response.text  # no inline script, only <script src=...>
    assert client.get("/releases", follow_redirects=False).status_code == 303


def test_a_wrong_token_is_refused_with_a_sentence(client: TestClient) -> None:
    response = client.post("/login", data={"token": "vmk_nope"})
    assert response.status_code == 401 and "not an agent token" in response.text
    assert COOKIE not in client.cookies


def test_the_session_cookie_is_httponly_strict_and_expiring(client: TestClient,
                                                           tmp_path: Path) -> None:
    cookie = sign_in(client, tmp_path, Scope.OPERATE)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Max-Age=28800" in cookie
    assert "Secure" not in cookie  # plain http in the test; https sets it
    page = client.get("/")
    assert "Every layer answers." in page.text and 'data-layer="PM2 apps"' in page.text


def test_the_overview_colours_the_first_broken_layer_red(client: TestClient, fake: Fake,
                                                        tmp_path: Path) -> None:
    sign_in(client, tmp_path, Scope.READ)
    fake.frontend_down = True
    live = client.get("/overview/live").text
    assert "The frontend is stopped in PM2." in live and "run `vmkeeper recover`" in live
    assert re.search(r'class="layer red" data-layer="PM2 apps"', live)
    assert re.search(r'class="layer green" data-layer="Apache"', live)
    assert "Since " in live


def test_the_overview_reads_the_warm_report_and_says_its_age(client: TestClient, fake: Fake,
                                                            clock: FakeClock,
                                                            tmp_path: Path) -> None:
    sign_in(client, tmp_path, Scope.READ)
    for _ in range(20):
        page = client.get("/overview/live").text
    assert fake.gathers == 1  # the first look waited for the first gather; 19 read it
    assert "Gathered 0 s ago" in page and 'id="stale"' not in page
    clock.advance(routes.STALE_S - 5)
    assert f"Gathered {routes.STALE_S - 5:.0f} s ago" in client.get("/overview/live").text
    assert fake.gathers == 1


def test_a_stale_report_is_said_so_with_why(client: TestClient, fake: Fake, clock: FakeClock,
                                           tmp_path: Path) -> None:
    sign_in(client, tmp_path, Scope.READ)
    assert "Every layer answers." in client.get("/").text
    fake.gather_error = "pm2 jlist timed out after 10 s"
    clock.advance(routes.STALE_S + 5)
    page = client.get("/").text  # waits for the gather it woke, which fails
    stale = re.search(r'<span class="warn" id="stale">([^<]+)</span>', page)
    assert stale, page
    assert stale.group(1) == (f"Stale: this report was gathered {routes.STALE_S + 5:.0f} s ago "
                              f"(over {routes.STALE_S:.0f} s); the last gather failed: "
                              "pm2 jlist timed out after 10 s.")
    assert "Every layer answers." in page  # the last good report stays, said to be old


def test_no_report_yet_says_so_instead_of_an_empty_page(client: TestClient, fake: Fake,
                                                       tmp_path: Path) -> None:
    sign_in(client, tmp_path, Scope.READ)
    fake.gather_error = "the PM2 home is not readable"
    page = client.get("/overview/live").text
    assert "No health report yet: the first gather has not finished (the PM2 home is not " \
           "readable)." in page
    assert 'id="verdict"' not in page


def test_rollback_needs_the_csrf_token_and_lands_as_an_operation(client: TestClient, fake: Fake,
                                                                 tmp_path: Path) -> None:
    sign_in(client, tmp_path, Scope.OPERATE, "alice")
    page = client.get(f"/releases/{OLD}/rollback")
    assert "fix the header" in page.text and ".env.production" in page.text
    refused = client.post(f"/releases/{OLD}/rollback", data={"confirm": "yes"})
    assert refused.status_code == 403 and "CSRF" in refused.text and fake.submitted == []
    done = client.post(f"/releases/{OLD}/rollback",
                       data={"confirm": "yes", "csrf": csrf(page.text)}, follow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == "/operations/op1"
    assert fake.submitted == [("rollback", {"release": OLD}, "alice")]


def test_a_read_token_sees_disabled_buttons_and_the_api_refuses(client: TestClient, fake: Fake,
                                                                tmp_path: Path) -> None:
    sign_in(client, tmp_path, Scope.READ, "viewer")
    page = client.get(f"/releases/{OLD}/rollback")
    assert 'id="rollback" disabled' in page.text and "has the read scope" in page.text
    refused = client.post(f"/releases/{OLD}/rollback",
                          data={"confirm": "yes", "csrf": csrf(page.text)})
    assert refused.status_code == 403 and "read scope" in refused.text
    deploy = client.post("/deploy", data={"branch": "main", "csrf": csrf(page.text)})
    assert deploy.status_code == 403 and fake.submitted == []


def test_the_active_and_buildless_releases_cannot_be_rolled_back_to(client: TestClient,
                                                                    tmp_path: Path) -> None:
    sign_in(client, tmp_path, Scope.OPERATE)
    page = client.get("/releases").text
    assert "this release is the active one" in page and "build output is gone" in page
    assert f'href="/releases/{OLD}/rollback"' in page
    assert f'href="/releases/{NEW}/rollback"' not in page


def test_deploy_without_a_session_or_branch_is_refused(client: TestClient, fake: Fake,
                                                       tmp_path: Path) -> None:
    assert client.post("/deploy", data={"branch": "main"}).status_code == 401
    sign_in(client, tmp_path, Scope.OPERATE)
    token = csrf(client.get("/releases").text)
    assert client.post("/deploy", data={"branch": " ", "csrf": token}).status_code == 400
    ok = client.post("/deploy", data={"branch": "main", "csrf": token}, follow_redirects=False)
    assert ok.status_code == 303 and fake.submitted == [("deploy", {"branch": "main"}, "ops")]


def test_sign_out_ends_the_session(client: TestClient, tmp_path: Path) -> None:
    sign_in(client, tmp_path, Scope.READ)
    token = csrf(client.get("/").text)
    assert client.post("/logout", data={"csrf": token}, follow_redirects=False).status_code == 303
    assert "Sign in" in client.get("/").text


def test_incidents_logs_and_media_pages_render(client: TestClient, tmp_path: Path) -> None:
    sign_in(client, tmp_path, Scope.READ)
    incidents = client.get("/incidents").text
    assert incidents.index("operator action") < incidents.index("deploy " + NEW)
    logs = client.get("/logs").text
    assert "token=[REDACTED]" in logs and "not found" in logs
    assert "closed" in client.get("/media").text


def test_the_timeline_shows_every_kind_linked_to_its_evidence(client: TestClient, fake: Fake,
                                                             board: routes.Dashboard,
                                                             tmp_path: Path) -> None:
    sign_in(client, tmp_path, Scope.READ)
    client.get("/overview/live")  # the warm gather's first look: restarts 2
    fake.restarts, fake.frontend_down = 4, True
    board.warm.refresh()  # the next gather sees both change
    page = client.get("/incidents").text
    kinds = re.findall(r'data-kind="([^"]+)"', page)
    assert set(kinds) == {"restart", "health", "operator action", "deploy", "incident",
                          "recovery", "alert", "oom kill"}
    assert 'href="/logs?app=frontend-dev">evidence' in page
    assert 'href="/incidents/1796125200-1">evidence' in page
    assert 'href="#oom-0">evidence' in page and 'id="oom-0"' in page
    assert str(escape(OOM_VERDICT)) in page
    health = re.search(r'href="(/incidents/health/\d+)">evidence', page)
    assert health
    change = client.get(health.group(1)).text
    assert "The frontend is stopped in PM2." in change and "frontend-dev is stopped" in change


def test_an_incident_page_serves_only_its_own_evidence_redacted(client: TestClient, fake: Fake,
                                                               tmp_path: Path) -> None:
    folder = tmp_path / "evidence" / "1796125200-1"
    folder.mkdir(parents=True)
    (folder / "pm2-logs.txt").write_text("frontend-dev/err: DATABASE_URL=postgres://u:hunter2@db/x\n")
    (folder / "bundle.tar.gz").write_bytes(b"\x1f\x8b fake")
    (tmp_path / "secret.txt").write_text("not evidence")
    fake.evidence = folder
    sign_in(client, tmp_path, Scope.READ)
    page = client.get("/incidents/1796125200-1").text
    assert "frontend-dev is stopped" in page and "pm2 restart frontend-dev" in page
    assert 'href="/incidents/1796125200-1/evidence/bundle.tar.gz"' in page
    logs = client.get("/incidents/1796125200-1/evidence/pm2-logs.txt")
    assert logs.status_code == 200 and "frontend-dev/err" in logs.text
    assert "hunter2" not in logs.text
    bundle = client.get("/incidents/1796125200-1/evidence/bundle.tar.gz")
    assert bundle.headers["content-type"] == "application/gzip"
    assert "attachment" in bundle.headers["content-disposition"]
    for name in ("secret.txt", "..%2Fsecret.txt", "nothing.txt"):
        refused = client.get(f"/incidents/1796125200-1/evidence/{name}")
        assert refused.status_code == 404 and "secret" not in refused.text.replace(name, "")
    assert client.get("/incidents/nope").status_code == 404


def test_the_media_page_shows_the_memory_pressure_gate(client: TestClient, fake: Fake,
                                                      tmp_path: Path) -> None:
    sign_in(client, tmp_path, Scope.READ)
    fake.media = {"breaker": {"state": "closed"}, "counts": {}, "jobs": [],
                  "memory_pressure": "memory pressure 42.0% (PSI some avg10)",
                  "pressure": {"source": "psi", "value_pct": 42.0, "high": True,
                               "line": "memory pressure 42.0% (PSI some avg10)",
                               "psi_warn_pct": 10.0, "available_warn_pct": 10.0}}
    closed = client.get("/media").text
    assert "Closed: new jobs wait (HTTP 503 with Retry-After) — memory pressure 42.0%" in closed
    assert "PSI some avg10 ≥ 10.0%" in closed
    fake.media = {"error": "the media service at http://127.0.0.1:1 does not answer",
                  "pressure": {"source": "meminfo", "value_pct": 55.0, "high": False,
                               "line": "55.0% of memory available",
                               "psi_warn_pct": 10.0, "available_warn_pct": 10.0}}
    open_ = client.get("/media").text
    assert "Open: new jobs are admitted." in open_ and "does not answer" in open_
    assert "≤ 10.0% of memory available" in open_


def test_the_static_files_are_small_and_local(client: TestClient) -> None:
    sizes = [len(client.get(f"/static/{name}").content) for name in ("app.js", "app.css")]
    assert all(0 < size < 10_000 for size in sizes)
    icon = client.get("/favicon.ico")  # asked for by pages without a <link rel=icon>
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
