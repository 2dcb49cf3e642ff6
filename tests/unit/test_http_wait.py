"""The one HTTP readiness wait (the switch's gate, the sandbox's site check), on a fake clock."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.clock import FakeClock
from vmkeeper.adapters import http

SITE, API = "http://127.0.0.1:8080/", "http://127.0.0.1:3000/api/auth/me"


def site(answers: dict[str, Callable[[float], int | None]], clock: FakeClock) -> http.Prober:
    """Each URL answers what its function says at the clock's time (None: refused)."""
    started = clock()

    def probe(url: str, *, timeout: float) -> http.Probe:
        status = answers[url](clock() - started)
        if status is None:
            return http.Probe(url, None, None, 0.0, http.ProbeError.REFUSED, "refused")
        return http.Probe(url, status, "node", 0.0)

    return probe


def test_waits_until_every_url_answers_its_status() -> None:
    clock = FakeClock()
    probe = site({SITE: lambda t: 200 if t >= 3 else None, API: lambda t: 401}, clock)
    ready = http.wait_until_answering({SITE: 200, API: 401}, timeout=10, probe=probe,
                                      clock=clock, sleep=clock.sleep)
    assert ready.ok and 3 <= ready.seconds < 3.5
    assert ready.answers == {SITE: "200", API: "401"}


def test_gives_up_at_the_timeout_and_says_what_each_url_last_answered() -> None:
    clock = FakeClock()
    probe = site({SITE: lambda t: 500, API: lambda t: None}, clock)
    ready = http.wait_until_answering({SITE: 200, API: 401}, timeout=5, probe=probe,
                                      clock=clock, sleep=clock.sleep, interval=0.5)
    assert not ready.ok and 5 <= ready.seconds < 5.5
    assert ready.last == (f"{SITE} → HTTP 500 (expected 200); {API} → connection refused")


def test_an_extra_condition_holds_readiness_back_and_says_why() -> None:
    clock = FakeClock()
    probe = site({SITE: lambda t: 200}, clock)
    held = iter(["PM2 shows frontend-dev online in /old", None])
    ready = http.wait_until_answering({SITE: 200}, timeout=5, probe=probe, clock=clock,
                                      sleep=clock.sleep, also=lambda: next(held))
    assert ready.ok and clock.slept == [0.25]
    never = http.wait_until_answering({SITE: 200}, timeout=1, probe=probe, clock=clock,
                                      sleep=clock.sleep, also=lambda: "PM2 shows it stopped")
    assert not never.ok and never.last == "200, but PM2 shows it stopped"
