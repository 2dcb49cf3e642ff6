"""The dashboard in a real Chromium (Debian's, driven by Selenium) against the sandbox and the
real agent process: sign in, live overview, deploy and rollback through the UI, a read token,
CSRF, CSP, console errors; screenshots at 360 and 1440 px into docs/screenshots/."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import SandboxHandle
from tests.support.waiting import wait_for
from vmkeeper.agent import auth
from vmkeeper.agent.auth import Scope
from vmkeeper.releases import store
from vmkeeper.sandbox import agent_proc

pytestmark = pytest.mark.slow
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--no-first-run")


@pytest.fixture(scope="module")
def agent(sandbox: SandboxHandle) -> str:
    """The sandbox's own agent process (`sandbox up` starts it outside PM2)."""
    agent_proc.start(sandbox.layout)
    return f"http://127.0.0.1:{sandbox.layout.ports.agent}"


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium')}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService("/usr/bin/chromedriver"))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(driver: Any, base: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    driver.delete_all_cookies()
    driver.get(base + "/")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.CSS_SELECTOR, "form[action='/login'] button").click()
    wait_for(lambda: driver.find_elements(By.ID, "verdict"), 20, "the overview after sign-in")


def layer(driver: Any, name: str) -> str:
    from selenium.webdriver.common.by import By

    return str(driver.find_element(By.CSS_SELECTOR, f"[data-layer='{name}']")
               .get_attribute("class"))


def shoot(driver: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    for width in (360, 1440):
        driver.set_window_size(width, 1000)
        driver.save_screenshot(str(SHOTS / f"{name}-{width}.png"))


def severe(driver: Any) -> list[Any]:
    return [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]


def test_overview_goes_red_when_the_frontend_stops(sandbox: SandboxHandle, agent: str,
                                                   browser: Any) -> None:
    token = auth.add(sandbox.settings.state_dir, "browser-ops", Scope.OPERATE).token
    sign_in(browser, agent, token)
    assert "green" in layer(browser, "PM2 apps") and "green" in layer(browser, "Apache")
    shoot(browser, "overview")
    headers = httpx.get(agent + "/").headers
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY"
    frontend = sandbox.settings.apps.frontend.name
    sandbox.pm2.stop(frontend)
    try:
        wait_for(lambda: "red" in layer(browser, "PM2 apps"), 10, "the PM2 apps layer to go red")
        sentence = browser.find_element("css selector", ".sentence").text
        assert frontend in sentence or "frontend" in sentence.lower()
        assert "Gathered" in browser.find_element("id", "age").text  # the warm report's age
        shoot(browser, "overview-broken")
        incident = watched_incident(sandbox)
    finally:
        sandbox.restore()
    assert severe(browser) == []
    incident_pages(browser, agent, incident)


def watched_incident(sandbox: SandboxHandle) -> str:
    """The real watcher, two cycles on the real sandbox with the frontend stopped: the first
    opens an incident (evidence captured: health, oom, PM2 logs, the bundle) and recovers, the
    second sees it healed and resolves it."""
    from vmkeeper.watch.service import build_watcher

    rules = sandbox.settings.watch.model_copy(update={"down_after": 1, "up_after": 1,
                                                      "backoff_s": 0})
    watcher = build_watcher(sandbox.settings.model_copy(update={"watch": rules}))
    watcher.cycle()
    wait_for(lambda: getattr(sandbox.pm2.app(sandbox.settings.apps.frontend.name), "status",
                             None) == "online",
             60, "the watcher's recovery to start the frontend")
    wait_for(lambda: watcher.cycle() and watcher.store.incidents()[-1].state == "resolved", 60,
             "the watcher to resolve its incident")
    return watcher.store.incidents()[-1].id


def incident_pages(browser: Any, agent: str, incident: str) -> None:
    """The timeline links the incident; its page links evidence files that are served."""
    from selenium.webdriver.common.by import By

    browser.get(agent + "/incidents")
    kinds = {e.get_attribute("data-kind") for e in
             browser.find_elements(By.CSS_SELECTOR, ".timeline li")}
    assert {"incident", "recovery", "alert", "health"} <= kinds
    browser.find_element(By.CSS_SELECTOR, f"a[href='/incidents/{incident}']").click()
    wait_for(lambda: browser.find_elements(By.ID, "evidence"), 20, "the incident page")
    names = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "#evidence a")]
    assert "health.json" in names and "pm2-logs.txt" in names, names
    shoot(browser, "incident")
    browser.find_element(By.LINK_TEXT, "pm2-logs.txt").click()
    wait_for(lambda: browser.find_element(By.TAG_NAME, "body").text, 20, "the log excerpt")
    assert severe(browser) == []  # a plain-text page asks for /favicon.ico too


def test_deploy_streams_and_rollback_switches(sandbox: SandboxHandle, agent: str,
                                              browser: Any) -> None:
    from selenium.webdriver.common.by import By

    token = auth.add(sandbox.settings.state_dir, "browser-deployer", Scope.OPERATE).token
    sign_in(browser, agent, token)
    before = [r.id for r in store.list_releases(sandbox.settings.releases.root)]
    browser.get(agent + "/releases")
    browser.find_element(By.CSS_SELECTOR, "form[action='/deploy'] button").click()
    output = wait_for(lambda: browser.find_element(By.ID, "op-output").text.strip(), 120,
                      "deploy output lines")
    assert output and not browser.find_element(By.ID, "op-result").text  # not finished yet
    wait_for(lambda: browser.find_element(By.ID, "op-result").text, 900, "the deploy's result")
    shoot(browser, "deploy")
    older = before[0]
    browser.get(f"{agent}/releases/{older}/rollback")
    shoot(browser, "rollback-preflight")
    browser.find_element(By.NAME, "confirm").click()
    browser.find_element(By.ID, "rollback").click()
    wait_for(lambda: browser.find_element(By.ID, "op-result").text, 300, "the rollback's result")
    live = sandbox.pm2.app(sandbox.settings.apps.frontend.name)  # pm2 jlist
    assert live is not None and older in str(live.cwd)
    browser.get(agent + "/incidents")
    shoot(browser, "incidents")
    assert severe(browser) == []


def test_a_read_token_cannot_roll_back_and_csrf_is_required(sandbox: SandboxHandle, agent: str,
                                                            browser: Any) -> None:
    from selenium.webdriver.common.by import By

    token = auth.add(sandbox.settings.state_dir, "browser-viewer", Scope.READ).token
    sign_in(browser, agent, token)
    target = store.list_releases(sandbox.settings.releases.root)[-1].id
    browser.get(f"{agent}/releases/{target}/rollback")
    assert not browser.find_element(By.ID, "rollback").is_enabled()
    cookie = {c["name"]: c["value"] for c in browser.get_cookies()}
    csrf = browser.find_element(By.NAME, "csrf").get_attribute("value")
    refused = httpx.post(f"{agent}/releases/{target}/rollback", cookies=cookie,
                         data={"confirm": "yes", "csrf": csrf}, timeout=10)
    assert refused.status_code == 403 and "read scope" in refused.text
    ops = auth.add(sandbox.settings.state_dir, "browser-csrf", Scope.OPERATE).token
    client = httpx.Client(base_url=agent, timeout=10)
    assert client.post("/login", data={"token": ops}).status_code in (200, 303)
    no_csrf = client.post(f"/releases/{target}/rollback", data={"confirm": "yes"})
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.text
