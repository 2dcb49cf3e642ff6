from __future__ import annotations

import threading

from tests.support.clock import FakeClock
from vmkeeper.agent.fresh import Fresh


def test_readers_within_the_max_age_share_one_computation() -> None:
    clock = FakeClock()
    calls: list[int] = []
    fresh = Fresh(lambda: calls.append(1) or len(calls), max_age_s=1.0, clock=clock)
    threads = [threading.Thread(target=fresh.get) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    clock.advance(2)
    assert fresh.get() == 2
