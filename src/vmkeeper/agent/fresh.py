"""Single-flight reads: concurrent readers of status/health share one computation.

Each report runs `pm2 jlist` (a Node process) and the health checks; 50 readers at once on 2
cores queued behind 50 of them (bench/agent.py: p50 5.9 s). One computes; the others wait for
it and get the same answer, which stays fresh for ``max_age_s``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


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
