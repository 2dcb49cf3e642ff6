"""One deploy or rollback at a time: the shared flock (vmkeeper.flock) on a file next to the
releases, naming the command, its branch and, once known, the sha and release it builds."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from vmkeeper import flock

LOCK_NAME = ".vmkeeper-deploy.lock"

DeployLock = flock.HeldLock

_REFUSAL = flock.Refusal("Another deploy or rollback is running",
                         "wait for it to finish, or pass --wait SECONDS.")


@contextlib.contextmanager
def acquire(
    root: Path,
    command: str,
    *,
    wait_s: float = 0.0,
    branch: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[DeployLock]:
    """Hold the deploy lock for the block; raise LockHeld naming the holder if it stays taken.

    ``wait_s`` > 0 polls for that long before giving up.
    """
    with flock.hold(root / LOCK_NAME, command, wait_s=wait_s, extra={"branch": branch},
                    refusal=_REFUSAL, sleep=sleep) as held:
        yield held
