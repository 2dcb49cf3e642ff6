"""The fake clock orchestration tests drive instead of sleeping (breaker, retries, backoff)."""

from __future__ import annotations


class FakeClock:
    """A monotonic clock that moves only when told; ``sleep`` advances it at once."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds
