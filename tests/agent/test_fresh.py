from __future__ import annotations

import threading

from tests.support.clock import FakeClock
from tests.support.waiting import wait_for
from vmkeeper.agent.fresh import Fresh, Snapshot, Warm


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


class Counting:
    def __init__(self) -> None:
        self.calls = 0
        self.error: str | None = None

    def __call__(self) -> int:
        self.calls += 1
        if self.error:
            raise RuntimeError(self.error)
        return self.calls


def test_warm_readers_wait_only_for_the_first_value_and_a_stale_one() -> None:
    clock, compute = FakeClock(), Counting()
    warm = Warm(compute, every_s=600, idle_s=3600, clock=clock)
    try:
        assert warm.read(max_age_s=15, wait_s=10).value == 1  # the first look waits for it
        for _ in range(50):
            assert warm.read(max_age_s=15, wait_s=10).value == 1
        assert compute.calls == 1  # 50 reads, no computation: the thread computes, not them
        clock.advance(20)
        snapshot = warm.read(max_age_s=15, wait_s=10)  # stale: wakes the thread and waits
        assert snapshot.value == 2 and snapshot.age_s(clock()) == 0
    finally:
        warm.stop()


def test_warm_keeps_the_last_good_value_when_a_computation_fails() -> None:
    clock, compute = FakeClock(), Counting()
    warm = Warm(compute, every_s=600, idle_s=3600, clock=clock)
    assert warm.refresh().value == 1
    compute.error = "pm2 jlist timed out"
    clock.advance(30)
    failed = warm.refresh()
    assert failed.value == 1 and failed.error == "pm2 jlist timed out"
    assert failed.age_s(clock()) == 30
    compute.error = None
    assert warm.refresh() == Snapshot(3, clock(), None)


def test_warm_refreshes_in_the_background_while_read_and_sleeps_when_nobody_reads() -> None:
    clock, compute = FakeClock(), Counting()
    warm = Warm(compute, every_s=0.01, idle_s=60, clock=clock)
    try:
        warm.read(max_age_s=15, wait_s=10)
        wait_for(lambda: compute.calls >= 3, 10, "three background computations", interval=0.002)
        clock.advance(61)  # nobody read for longer than idle_s
        wait_for(lambda: warm.sleeping, 10, "the thread to go idle", interval=0.002)
        idle_calls = compute.calls
        assert warm.read(max_age_s=15, wait_s=10).value == idle_calls + 1  # a reader wakes it
    finally:
        warm.stop()
