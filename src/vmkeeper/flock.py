"""The one exclusive lock between processes: an flock on a file that also says who holds it.

flock, not a pid file: the kernel frees it when the holder dies however it dies (SIGKILL, an
OOM kill, a closed terminal), so there is never a stale lock to delete by hand — the most
common complaint about Capistrano's and Deployer's lock files. The file holds the holder's pid,
what it is doing, since when, and any fields the holder adds as it learns them (a deploy's sha),
so a refused caller is told who is in the way. Deploys and rollbacks take one on the releases
folder; the media service one on its job store.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vmkeeper.errors import LockHeld
from vmkeeper.logrecord import timestamp

_POLL_S = 0.2


@dataclass(frozen=True)
class Holder:
    pid: int
    what: str  # "deploy", "rollback", "media service"
    since: str  # logrecord.timestamp() of the moment it was taken
    extra: Mapping[str, str] = field(default_factory=dict)

    def describe(self) -> str:
        parts = [f"pid {self.pid}", f"{self.what} since {self.since}"]
        parts += [f"{key} {value}" for key, value in self.extra.items()]
        return ", ".join(parts)

    def to_json(self) -> str:
        return json.dumps({**self.extra, "pid": self.pid, "what": self.what,
                           "since": self.since})


def read_holder(path: Path) -> Holder | None:
    """Who the lock file names; None when it names no one (free, or unreadable).

    The file outlives a holder killed -9 (the kernel frees the lock, not the text): to ask
    whether somebody holds the lock now, use :func:`live_holder`."""
    try:
        data = json.loads(path.read_text() or "null")
        if not isinstance(data, dict):
            return None
        fixed = {"pid", "what", "since"}
        return Holder(int(data["pid"]), str(data["what"]), str(data["since"]),
                      {str(k): str(v) for k, v in data.items() if k not in fixed and v is not None})
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_holder(path: Path) -> Holder | None:
    """Who holds the lock at ``path`` now; None when nobody does, whatever the file says.

    Probes with a shared non-blocking flock on a fresh descriptor: it succeeds only when no
    one holds the exclusive lock (flock locks belong to open descriptions, so this works in
    the holder's own process too). A held lock whose file is not written yet (the moment
    between flock and write in :func:`take`) is named as an unknown holder."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:  # no lock file: never taken; unreadable: say what the text says
        return read_holder(path)
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_holder(path) or Holder(0, "unknown holder", timestamp())
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


class HeldLock:
    """A lock this process holds; ``update`` rewrites the holder's fields as it learns them."""

    def __init__(self, path: Path, fd: int, holder: Holder) -> None:
        self.path = path
        self._fd = fd
        self.holder = holder
        self._write()

    def _write(self) -> None:
        payload = self.holder.to_json().encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, payload, 0)
        os.fsync(self._fd)

    def update(self, **fields: str | None) -> None:
        """Add or change extra fields; None removes one."""
        extra = {**self.holder.extra, **fields}
        self.holder = Holder(self.holder.pid, self.holder.what, self.holder.since,
                             {k: v for k, v in extra.items() if v is not None})
        self._write()

    def release(self) -> None:
        if self._fd < 0:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)  # unlocked info would only mislead; never unlink (races)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = -1


@dataclass(frozen=True)
class Refusal:
    """How a refused caller is told: ``busy`` (who is in the way) then ``advice``."""

    busy: str = "The lock is held by another process"
    advice: str = "try again when it has finished."


def take(path: Path, what: str, *, wait_s: float = 0.0,
         extra: Mapping[str, str | None] | None = None, refusal: Refusal = Refusal(),
         sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> HeldLock:
    """Take the lock at ``path`` (created if missing) for ``what``; call ``release`` after.

    ``wait_s`` > 0 polls for that long. Raises LockHeld naming the holder if it stays taken.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_CLOEXEC (Python's default) keeps a child the holder spawns (a PM2 daemon a deploy
    # starts) from inheriting the lock and holding it after the holder is gone.
    # 0600: the holder record names who does what (chmod: a lock left by an older version).
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.fchmod(fd, 0o600)
    deadline = clock() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if clock() >= deadline:
                os.close(fd)
                raise _refused(path, wait_s, refusal) from None
            sleep(_POLL_S)
        except BaseException:
            os.close(fd)
            raise
    fields = {k: v for k, v in (extra or {}).items() if v is not None}
    return HeldLock(path, fd, Holder(os.getpid(), what, timestamp(), fields))


@contextlib.contextmanager
def hold(path: Path, what: str, *, wait_s: float = 0.0,
         extra: Mapping[str, str | None] | None = None, refusal: Refusal = Refusal(),
         sleep: Callable[[float], None] = time.sleep,
         clock: Callable[[], float] = time.monotonic) -> Iterator[HeldLock]:
    """:func:`take` for the length of a block."""
    held = take(path, what, wait_s=wait_s, extra=extra, refusal=refusal, sleep=sleep,
                clock=clock)
    try:
        yield held
    finally:
        held.release()


def _refused(path: Path, wait_s: float, refusal: Refusal) -> LockHeld:
    holder = read_holder(path)
    who = holder.describe() if holder else "holder unknown"
    waited = f" after waiting {wait_s:g} s" if wait_s > 0 else ""
    return LockHeld(f"{refusal.busy} ({who}){waited}: {refusal.advice}")
