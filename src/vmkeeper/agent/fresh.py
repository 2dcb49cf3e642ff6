"""Shared reads of a report that is costly to compute (health: `pm2 jlist` and the checks).

``Fresh`` is single-flight on demand: 50 readers at once on 2 cores queued behind 50
computations (bench/agent.py: p50 5.9 s); one computes, the others wait for it and get the same
answer, which stays fresh for ``max_age_s``. ``Warm`` computes in a background thread every
``every_s`` while someone reads, so a reader never waits for the computation (the dashboard's
overview: 505 ms p50 when it gathered itself); it pauses after ``idle_s`` without a reader, so
an agent nobody looks at does not run `pm2 jlist` every few seconds on a 2-core VM.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Fresh:
    def __init__(self, compute: Callable[[], Any], max_age_s: float = 1.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._compute, self._max_age, self._clock = compute, max_age_s, clock
        self._lock = threading.Lock()
        self._at: float | None = None
        self._value: Any = None

    def get(self) -> Any:
        asked = self._clock()
        with self._lock:  # a reader that waited here gets what the one before it computed
            if self._at is None or self._at < asked - self._max_age:
                self._value = self._compute()
                self._at = self._clock()
            return self._value


@dataclass(frozen=True)
class Snapshot(Generic[T]):
    value: T | None  # the latest good value; None until the first computation succeeded
    at: float | None  # the clock when that value was computed
    error: str | None = None  # why the last computation failed, if it did

    def age_s(self, now: float) -> float | None:
        return None if self.at is None else max(0.0, now - self.at)


class Warm(Generic[T]):
    """The latest value of ``compute``, recomputed in the background while it is read."""

    def __init__(self, compute: Callable[[], T], every_s: float, idle_s: float,
                 clock: Callable[[], float] = time.monotonic, name: str = "vmkeeper-warm"
                 ) -> None:
        self._compute, self.every_s, self.idle_s, self._clock = compute, every_s, idle_s, clock
        self._name = name
        self._changed = threading.Condition()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._snapshot: Snapshot[T] = Snapshot(None, None)
        self._computed = 0  # how many computations finished (good or failed)
        self._needed = 0  # a reader waits until _computed reaches this
        self._read_at: float | None = None
        self._thread: threading.Thread | None = None
        self.sleeping = False  # the thread waits for a reader (nobody read for idle_s)

    @property
    def computed(self) -> int:
        """How many computations have finished (benchmarks count the background ones)."""
        return self._computed

    def refresh(self) -> Snapshot[T]:
        """One computation now (the thread's step; tests call it directly)."""
        try:
            value = self._compute()
        except Exception as error:  # noqa: BLE001 - a failed gather keeps the last good value
            with self._changed:
                self._snapshot = Snapshot(self._snapshot.value, self._snapshot.at,
                                          str(error) or type(error).__name__)
                self._computed += 1
                self._changed.notify_all()
                return self._snapshot
        with self._changed:
            self._snapshot = Snapshot(value, self._clock())
            self._computed += 1
            self._changed.notify_all()
            return self._snapshot

    def read(self, max_age_s: float, wait_s: float) -> Snapshot[T]:
        """The latest snapshot; one older than ``max_age_s`` (or none yet) waits up to
        ``wait_s`` for the computation under way, then is returned as it is — the caller says
        its age."""
        with self._changed:
            self._read_at = self._clock()
            computed, snapshot = self._computed, self._snapshot
        self._ensure_thread()
        if self.sleeping:
            self._wake.set()  # idle: keep it warm again from now on
        age = snapshot.age_s(self._clock())
        if age is not None and age <= max_age_s:
            return snapshot
        with self._changed:
            self._needed = max(self._needed, computed + 1)
        self._wake.set()
        with self._changed:
            self._changed.wait_for(lambda: self._computed > computed, timeout=wait_s)
            return self._snapshot

    def _idle(self) -> bool:
        with self._changed:
            return self._read_at is None or self._clock() - self._read_at > self.idle_s

    def _run(self) -> None:
        due = True  # the period is up (or this is the first pass)
        while not self._stop.is_set():
            if self._idle():
                self.sleeping = True
                self._wake.wait()  # nobody reads: sleep until a reader comes back
                self._wake.clear()
                self.sleeping = False
                continue
            with self._changed:
                asked = self._computed < self._needed  # not met by one already under way
            if due or asked:
                self.refresh()
            due = not self._wake.wait(self.every_s)
            self._wake.clear()

    def _ensure_thread(self) -> None:
        with self._changed:
            if self._thread is not None or self._stop.is_set():
                return
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
