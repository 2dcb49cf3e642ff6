"""The runbook's FFmpeg circuit breaker: stop launching heavy jobs after repeated media failures.

FFMPEG_BREAKER_FAILURE_THRESHOLD consecutive media failures (crash, timeout, memory limit) open
it; while open, new work is refused at once; after FFMPEG_BREAKER_COOLDOWN_MS it lets one trial
job through at a time and closes after FFMPEG_BREAKER_SUCCESS_THRESHOLD trial successes (one
trial failure opens it again for another cooldown).

Not pybreaker, although it has all three settings, because its semantics do not fit:
- an excluded exception (our "rejected input") is handled as a *success*: it resets the failure
  count and can close a half-open breaker, while a rejected input must count neither way;
- half-open lets every concurrent caller through, not one trial at a time;
- it reads ``datetime.now`` itself: no clock to inject, so tests would have to sleep or patch;
- it wraps a synchronous call, while a job is admitted at submit and settled later.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from vmkeeper.settings import BreakerSettings

Clock = Callable[[], float]  # wall-clock seconds (time.time): the state outlives a restart


class BreakerState(str, Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerStatus:
    state: BreakerState
    consecutive_failures: int
    trial_successes: int
    failure_threshold: int
    success_threshold: int
    cooldown_s: float
    opened_at: float | None
    closes_at: float | None  # when the cooldown ends (trials start), while open
    retry_after_s: float | None  # seconds until new work is admitted, while open
    trial_running: bool


@dataclass(frozen=True)
class BreakerMemo:
    """What survives a restart (kept in the job store): an open breaker stays open."""

    state: BreakerState
    consecutive_failures: int
    trial_successes: int
    opened_at: float | None


class Breaker:
    """Thread-safe; every method takes the lock, none blocks or sleeps."""

    def __init__(self, settings: BreakerSettings, clock: Clock,
                 memo: BreakerMemo | None = None,
                 on_change: Callable[[BreakerMemo], None] | None = None) -> None:
        self._failure_threshold = settings.failure_threshold
        self._success_threshold = settings.success_threshold
        self._cooldown_s = settings.cooldown_ms / 1000
        self._clock = clock
        self._on_change = on_change
        self._lock = threading.Lock()
        self._state = memo.state if memo else BreakerState.CLOSED
        self._failures = memo.consecutive_failures if memo else 0
        self._successes = memo.trial_successes if memo else 0
        self._opened_at = memo.opened_at if memo else None
        # A trial in flight when the service died is not in flight any more.
        self._trial_running = False

    def _memo(self) -> BreakerMemo:
        return BreakerMemo(self._state, self._failures, self._successes, self._opened_at)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self._memo())

    def _cooled_down(self) -> bool:
        assert self._opened_at is not None
        return self._clock() >= self._opened_at + self._cooldown_s

    def _refresh(self) -> None:
        if self._state is BreakerState.OPEN and self._cooled_down():
            self._state = BreakerState.HALF_OPEN
            self._successes = 0
            self._changed()

    def status(self) -> BreakerStatus:
        with self._lock:
            self._refresh()
            closes_at = retry_after = None
            if self._state is BreakerState.OPEN and self._opened_at is not None:
                closes_at = self._opened_at + self._cooldown_s
                retry_after = max(closes_at - self._clock(), 0.0)
            return BreakerStatus(
                self._state, self._failures, self._successes, self._failure_threshold,
                self._success_threshold, self._cooldown_s, self._opened_at, closes_at,
                retry_after, self._trial_running,
            )

    def admits_new_work(self) -> bool:
        """Whether a new job may be queued: refused only while open (cooling down)."""
        with self._lock:
            self._refresh()
            return self._state is not BreakerState.OPEN

    def try_start(self) -> bool:
        """Claim the right to launch one job now; False while open or while a trial runs."""
        with self._lock:
            self._refresh()
            if self._state is BreakerState.OPEN:
                return False
            if self._state is BreakerState.HALF_OPEN:
                if self._trial_running:
                    return False
                self._trial_running = True
            return True

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            if self._state is BreakerState.HALF_OPEN:
                self._trial_running = False
                self._successes += 1
                if self._successes >= self._success_threshold:
                    self._state = BreakerState.CLOSED
                    self._successes = 0
                    self._opened_at = None
            self._changed()

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._state is BreakerState.HALF_OPEN or (
                self._state is BreakerState.CLOSED and self._failures >= self._failure_threshold
            ):
                self._open()
            self._changed()

    def record_neutral(self) -> None:
        """A job that ran no media work (input rejected): counts neither way, frees the trial."""
        with self._lock:
            if self._state is BreakerState.HALF_OPEN:
                self._trial_running = False

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._clock()
        self._successes = 0
        self._trial_running = False
