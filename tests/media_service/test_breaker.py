"""The breaker's rules, driven by a fake clock (no sleeping)."""

from __future__ import annotations

from vmkeeper.media.breaker import Breaker, BreakerMemo, BreakerState
from vmkeeper.settings import BreakerSettings

from .helpers import FakeClock


def _breaker(clock: FakeClock, failures: int = 3, cooldown_ms: int = 60_000,
             successes: int = 2) -> Breaker:
    return Breaker(BreakerSettings(failure_threshold=failures, cooldown_ms=cooldown_ms,
                                   success_threshold=successes), clock)


def test_breaker_opens_after_threshold_consecutive_failures_and_refuses_new_work() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    for _ in range(2):
        assert breaker.try_start()
        breaker.record_failure()
    assert breaker.status().state is BreakerState.CLOSED
    assert breaker.try_start()
    breaker.record_failure()
    status = breaker.status()
    assert status.state is BreakerState.OPEN
    assert status.retry_after_s == 60
    assert not breaker.admits_new_work()
    assert not breaker.try_start()


def test_breaker_success_resets_the_consecutive_failure_count() -> None:
    breaker = _breaker(FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.status().state is BreakerState.CLOSED


def test_rejected_inputs_count_neither_as_failure_nor_as_success() -> None:
    clock = FakeClock()
    breaker = _breaker(clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_neutral()  # pybreaker would reset the count here
    breaker.record_failure()
    assert breaker.status().state is BreakerState.OPEN
    clock.advance(60)
    assert breaker.try_start()
    breaker.record_neutral()  # and pybreaker would count this as a trial success
    assert breaker.status().trial_successes == 0
    assert breaker.status().state is BreakerState.HALF_OPEN


def test_after_cooldown_one_trial_at_a_time_and_closes_after_success_threshold() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failures=1, successes=2)
    breaker.record_failure()
    clock.advance(59.9)
    assert not breaker.try_start()
    clock.advance(0.1)
    assert breaker.admits_new_work()
    assert breaker.try_start()
    assert not breaker.try_start(), "a second trial while the first runs"
    breaker.record_success()
    assert breaker.status().state is BreakerState.HALF_OPEN
    assert breaker.try_start()
    breaker.record_success()
    assert breaker.status().state is BreakerState.CLOSED
    assert breaker.try_start() and breaker.try_start()


def test_a_failed_trial_opens_the_breaker_for_another_cooldown() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, failures=1)
    breaker.record_failure()
    clock.advance(60)
    assert breaker.try_start()
    breaker.record_failure()
    status = breaker.status()
    assert status.state is BreakerState.OPEN
    assert status.closes_at == clock.now + 60


def test_breaker_state_survives_a_restart_through_its_memo() -> None:
    clock = FakeClock()
    saved: list[BreakerMemo] = []
    breaker = Breaker(BreakerSettings(failure_threshold=1), clock, on_change=saved.append)
    breaker.record_failure()
    again = Breaker(BreakerSettings(failure_threshold=1), clock, memo=saved[-1])
    assert again.status().state is BreakerState.OPEN
    assert not again.try_start()
