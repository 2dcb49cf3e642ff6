"""One deploy or rollback at a time: an flock on a file next to the releases.

flock, not a pid file: the kernel frees it when the holder dies however it dies (SIGKILL,
OOM kill, a closed terminal), so there is never a stale lock to delete by hand — the most
common complaint about Capistrano's and Deployer's lock files. The file also says who holds it.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from vmkeeper.errors import LockHeld

LOCK_NAME = ".vmkeeper-deploy.lock"


@dataclass(frozen=True)
class Holder:
    pid: int
    started_at: str
    command: str
    branch: str | None = None
    sha: str | None = None
    release: str | None = None

    def describe(self) -> str:
        parts = [f"pid {self.pid}", f"started {self.started_at}", f"command {self.command}"]
        if self.branch:
            parts.append(f"branch {self.branch}")
        if self.sha:
            parts.append(f"sha {self.sha[:12]}")
        return ", ".join(parts)


def read_holder(path: Path) -> Holder | None:
    try:
        data = json.loads(path.read_text() or "null")
        if not isinstance(data, dict):
            return None
        return Holder(
            pid=int(data["pid"]), started_at=str(data["started_at"]), command=str(data["command"]),
            branch=data.get("branch"), sha=data.get("sha"), release=data.get("release"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


class DeployLock:
    """The held lock; ``update`` rewrites the holder info as the deploy learns its sha."""

    def __init__(self, path: Path, fd: int, holder: Holder) -> None:
        self.path = path
        self._fd = fd
        self.holder = holder
        self._write()

    def _write(self) -> None:
        payload = json.dumps(self.holder.__dict__).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, payload, 0)
        os.fsync(self._fd)

    def update(self, **changes: str | None) -> None:
        self.holder = Holder(**{**self.holder.__dict__, **changes})
        self._write()

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # unlocked info would only mislead; never unlink (races)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)


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
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK_NAME
    # O_CLOEXEC (Python's default) keeps the PM2 daemon a deploy may spawn from inheriting it.
    # 0600: the holder record names who deploys what; chmod: a lock left by an older version.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                holder = read_holder(path)
                os.close(fd)
                who = holder.describe() if holder else "holder unknown"
                waited = f" after waiting {wait_s:g} s" if wait_s > 0 else ""
                raise LockHeld(
                    f"Another deploy or rollback is running ({who}){waited}: wait for it to "
                    f"finish, or pass --wait SECONDS."
                ) from None
            sleep(0.2)
    started = datetime.now(UTC).isoformat(timespec="seconds")
    lock = DeployLock(path, fd, Holder(os.getpid(), started, command, branch))
    try:
        yield lock
    finally:
        lock.release()
