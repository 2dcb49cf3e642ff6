"""The dashboard through FastAPI's TestClient: sessions, CSRF, scopes, headers, pages."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.dashboard.fakes import NEW, OLD, Fake
from vmkeeper.agent import auth
from vmkeeper.agent.auth import Scope
from vmkeeper.dashboard import routes
from vmkeeper.dashboard.session import COOKIE, Sessions


@pytest.fixture
def fake() -> Fake:
    return Fake()


@pytest.fixture
def client(tmp_path: Path, fake: Fake) -> TestClient:
    app = FastAPI()
    routes.install(app, Sessions(tmp_path), fake.sources())
    return TestClient(app)


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


def test_the_static_files_are_small_and_local(client: TestClient) -> None:
    sizes = [len(client.get(f"/static/{name}").content) for name in ("app.js", "app.css")]
    assert all(0 < size < 10_000 for size in sizes)
