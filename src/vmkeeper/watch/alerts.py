"""Alert sinks: a webhook (generic JSON, or Slack's and Discord's payloads) and SMTP email, each
with a timeout and retries. Text goes through the project's redactor before it leaves; a sink
that cannot deliver is logged and never stops the loop."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict
from email.message import EmailMessage
from typing import Any

from vmkeeper.settings import AlertsSettings, Settings
from vmkeeper.watch.loop import Alert, Notify

log = logging.getLogger(__name__)

_TITLES = {"open": "incident opened, recovering", "gave_up": "incident: vmkeeper gave up, "
           "a person is needed", "resolved": "incident resolved"}


def _redact(text: str) -> str:
    from vmkeeper.health.logs import redactor

    return redactor()(text)


def text_of(alert: Alert) -> str:
    incident = alert.incident
    took = (f" after {incident.seconds_to_recover:.0f} s"
            if incident.seconds_to_recover is not None else "")
    return _redact(f"vmkeeper {_TITLES.get(alert.kind, alert.kind)}{took}: {incident.diagnosis}"
                   f" (incident {incident.id})")


def payload(alert: Alert, style: str) -> dict[str, Any]:
    """The webhook body: Slack wants ``text``, Discord ``content``, the generic one all of it."""
    if style == "slack":
        return {"text": text_of(alert)}
    if style == "discord":
        return {"content": text_of(alert)[:2000]}  # Discord's limit
    from vmkeeper.redact import redact_json

    # All of the incident through the redactor, not only its diagnosis: a recovery step's
    # command line, its output and the evidence paths reach the receiver too.
    body = redact_json(asdict(alert.incident))
    return {"event": alert.kind, "text": text_of(alert), "incident": body}


def _retrying(what: str, send: Callable[[], None], retries: int,
              sleep: Callable[[float], None]) -> bool:
    for attempt in range(1, retries + 1):
        try:
            send()
            return True
        except Exception as error:  # noqa: BLE001 - any delivery failure is retried, then logged
            log.warning("%s alert attempt %d/%d failed: %s", what, attempt, retries, error)
            if attempt < retries:
                sleep(min(30.0, 2.0 ** (attempt - 1)))
    return False


def webhook_sink(rules: AlertsSettings, sleep: Callable[[float], None] = time.sleep) -> Notify:
    import httpx

    url = rules.webhook_url or ""

    def send(alert: Alert) -> None:
        def post() -> None:
            response = httpx.post(url, json=payload(alert, rules.webhook_format),
                                  timeout=rules.timeout_s)
            response.raise_for_status()

        _retrying("webhook", post, rules.retries, sleep)

    return send


def smtp_sink(rules: AlertsSettings, sleep: Callable[[float], None] = time.sleep) -> Notify:
    import smtplib

    def send(alert: Alert) -> None:
        message = EmailMessage()
        message["Subject"] = f"[vmkeeper] {_TITLES.get(alert.kind, alert.kind)}"
        message["From"] = rules.smtp_from
        message["To"] = ", ".join(rules.smtp_to)
        message.set_content(text_of(alert) + "\n")

        def deliver() -> None:
            with smtplib.SMTP(rules.smtp_host or "", rules.smtp_port,
                              timeout=rules.timeout_s) as smtp:
                if rules.smtp_starttls:
                    smtp.starttls()
                if rules.smtp_user:
                    smtp.login(rules.smtp_user, rules.smtp_password or "")
                smtp.send_message(message)

        _retrying("smtp", deliver, rules.retries, sleep)

    return send


def sinks(settings: Settings) -> Notify:
    """Every configured sink, one after the other."""
    rules = settings.alerts
    chosen: list[Notify] = []
    if rules.webhook_url:
        chosen.append(webhook_sink(rules))
    if rules.smtp_host and rules.smtp_to:
        chosen.append(smtp_sink(rules))

    def notify(alert: Alert) -> None:
        log.info("alert %s for incident %s", alert.kind, alert.incident.id)
        for sink in chosen:
            sink(alert)

    return notify
