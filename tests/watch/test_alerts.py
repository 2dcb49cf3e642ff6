"""The alert sinks against real receivers: an HTTP server in the test for the webhook (generic,
Slack and Discord payloads, a retry after a 500) and aiosmtpd for email; secrets redacted."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.waiting import wait_for
from vmkeeper.settings import AlertsSettings
from vmkeeper.watch.alerts import smtp_sink, webhook_sink
from vmkeeper.watch.loop import Alert
from vmkeeper.watch.store import Incident, Store

SECRET = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
INCIDENT = Incident("1-1", "open", 1_000.0, f"frontend-dev stopped; token {SECRET} in argv")


class Receiver:
    def __init__(self, fail_first: int = 0) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.fail_first = fail_first
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if outer.fail_first > 0:
                    outer.fail_first -= 1
                    self.send_response(500)
                else:
                    outer.bodies.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver(fail_first=1)
    yield found
    found.server.shutdown()


@pytest.mark.parametrize("style", ["generic", "slack", "discord"])
def test_webhook_payloads_are_redacted_and_retried(receiver: Receiver, style: str) -> None:
    rules = AlertsSettings(webhook_url=receiver.url, webhook_format=style, retries=3,
                           timeout_s=5)
    webhook_sink(rules, sleep=lambda _s: None)(Alert("open", INCIDENT))
    [body] = receiver.bodies  # the first POST got a 500, the retry got through: one alert
    text = json.dumps(body)
    assert SECRET not in text and "frontend-dev stopped" in text
    key = {"generic": "text", "slack": "text", "discord": "content"}[style]
    assert "incident opened" in body[key]
    if style == "generic":
        assert body["event"] == "open" and body["incident"]["id"] == "1-1"


def test_webhook_that_never_answers_gives_up_quietly() -> None:
    rules = AlertsSettings(webhook_url="http://127.0.0.1:9/none", retries=2, timeout_s=1)
    sleeps: list[float] = []
    webhook_sink(rules, sleep=sleeps.append)(Alert("open", INCIDENT))  # no exception escapes
    assert sleeps == [1.0]


def test_smtp_delivers_one_redacted_email() -> None:
    from aiosmtpd.controller import Controller

    from tests.conftest import TEST_BASE_PORT

    received: list[str] = []

    class Handler:
        async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
            received.append(envelope.content.decode())
            return "250 OK"

    port = TEST_BASE_PORT + 95
    controller = Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        rules = AlertsSettings(smtp_host="127.0.0.1", smtp_port=port, smtp_to=["ops@example.org"],
                               timeout_s=5)
        smtp_sink(rules, sleep=lambda _s: None)(Alert("resolved", INCIDENT))
        wait_for(lambda: received, timeout=5, what="the email")
    finally:
        controller.stop()
    [mail] = received
    assert "Subject: [vmkeeper] incident resolved" in mail
    assert SECRET not in mail and "frontend-dev stopped" in mail


def test_the_generic_payload_redacts_the_actions_too(receiver: Receiver) -> None:
    """A secret in a recovery step's argv (and its output) never reaches the receiver."""
    steps = [{"command": f"pm2 restart frontend-dev --token {SECRET}", "ok": False,
              "outcome": "failed", "recheck": f"GITHUB_TOKEN={SECRET} in the env"},
             {"argv": ["curl", "--password", "p4ss-w0rd-long-one", "http://127.0.0.1/"]}]
    incident = Incident("1-2", "gave_up", 1_000.0, "frontend-dev stopped",
                        actions=[{"at": 1_001.0, "ok": False, "diagnosis": "frontend-dev stopped",
                                  "steps": steps}])
    rules = AlertsSettings(webhook_url=receiver.url, retries=3, timeout_s=5)
    webhook_sink(rules, sleep=lambda _s: None)(Alert("gave_up", incident))
    [body] = receiver.bodies
    text = json.dumps(body)
    assert SECRET not in text and "p4ss-w0rd-long-one" not in text
    [step, call] = body["incident"]["actions"][0]["steps"]
    assert step["command"].startswith("pm2 restart frontend-dev --token «redacted")
    assert call["argv"][:2] == ["curl", "--password"] and body["event"] == "gave_up"


def test_incidents_are_kept_redacted(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save(Incident("1-3", "open", 1_000.0, "frontend-dev stopped",
                        actions=[{"steps": [{"command": f"pm2 start --token {SECRET}"}]}]))
    assert SECRET not in store.incidents_path.read_text()
    [kept] = store.incidents()
    assert kept.actions[0]["steps"][0]["command"].startswith("pm2 start --token «redacted")
