"""A memory limit around each reversal worker, by the strongest mechanism the host offers.

In the June 2026 incident the kernel's OOM killer chose PM2's tree (the whole site) because
FFmpeg's 3.3 GiB counted against the whole VM. Under a limit of its own, a reversal that grows
too large is killed alone: a cgroup (``memory.max`` on v2, ``memory.limit_in_bytes`` on v1)
where one can be created and written; ``systemd-run --scope -p MemoryMax=`` where systemd runs
(a transient scope is a cgroup systemd manages for us); ``RLIMIT_AS`` otherwise (per process and
counting address space, not resident memory, so the weakest: allocations fail instead of a kill).

A cgroup also holds the worker's whole tree, so a timeout can kill every process in it, even
one that left the worker's process group.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import psutil

from vmkeeper.media.job import Confine

CGROUP_FS = Path("/sys/fs/cgroup")
SYSTEMD_RUNTIME = Path("/run/systemd/system")
_KILL_WAIT_S = 5.0

# What an allocation failure under RLIMIT_AS looks like from Python, FFmpeg and C++ code.
_ALLOCATION_FAILED = re.compile(
    r"MemoryError|Cannot allocate memory|ENOMEM|bad_alloc|out of memory|failed to map segment",
    re.IGNORECASE)


class Mechanism(str, Enum):
    CGROUP_V2 = "cgroup-v2"
    CGROUP_V1 = "cgroup-v1"
    SYSTEMD_SCOPE = "systemd-run-scope"
    RLIMIT_AS = "rlimit-as"


@dataclass(frozen=True)
class IsolationInfo:
    mechanism: Mechanism
    limit_bytes: int
    detail: str  # the cgroup parent folder, the systemd-run program, or "per process"


def _own_cgroup(cgroup_fs: Path, controller: str | None) -> Path | None:
    """This process's cgroup folder for ``controller`` (None: the v2 unified hierarchy)."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _id, _sep, rest = line.partition(":")
        controllers, _sep, path = rest.partition(":")
        if (controller is None and controllers == "") or (
                controller is not None and controller in controllers.split(",")):
            base = cgroup_fs if controller is None else cgroup_fs / controller
            return base / path.lstrip("/")
    return None


def _writable_parent(candidates: Sequence[Path | None], limit_file: str) -> Path | None:
    """The first folder where a child cgroup can be made and limited (tried, then removed)."""
    for parent in candidates:
        if parent is None or not parent.is_dir():
            continue
        probe = parent / f"vmkeeper-probe-{os.getpid()}"
        try:
            probe.mkdir()
        except OSError:
            continue
        try:
            (probe / limit_file).write_text("max" if limit_file == "memory.max" else "-1")
            return parent
        except OSError:
            continue
        finally:
            with contextlib.suppress(OSError):
                probe.rmdir()
    return None


def detect(limit_bytes: int, cgroup_fs: Path = CGROUP_FS,
           systemd_runtime: Path = SYSTEMD_RUNTIME,
           allowed: Sequence[Mechanism] = tuple(Mechanism)) -> Isolation:
    """The strongest mechanism among ``allowed`` that works here (RLIMIT_AS always does)."""
    if Mechanism.CGROUP_V2 in allowed and (cgroup_fs / "cgroup.controllers").is_file():
        own = _own_cgroup(cgroup_fs, None)
        parent = _writable_parent([own, cgroup_fs], "memory.max")
        if parent is not None and "memory" in _read(parent / "cgroup.subtree_control"):
            return CgroupIsolation(IsolationInfo(Mechanism.CGROUP_V2, limit_bytes, str(parent)))
    if Mechanism.CGROUP_V1 in allowed and (cgroup_fs / "memory").is_dir():
        parent = _writable_parent(
            [_own_cgroup(cgroup_fs, "memory"), cgroup_fs / "memory"], "memory.limit_in_bytes")
        if parent is not None:
            return CgroupIsolation(IsolationInfo(Mechanism.CGROUP_V1, limit_bytes, str(parent)))
    systemd_run = shutil.which("systemd-run")
    if Mechanism.SYSTEMD_SCOPE in allowed and systemd_run and systemd_runtime.is_dir():
        return SystemdIsolation(IsolationInfo(Mechanism.SYSTEMD_SCOPE, limit_bytes, systemd_run))
    return RlimitIsolation(IsolationInfo(Mechanism.RLIMIT_AS, limit_bytes, "per process"))


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _counter(text: str, name: str) -> int:
    for line in text.splitlines():
        field, _sep, value = line.partition(" ")
        if field == name and value.strip().isdigit():
            return int(value)
    return 0


def kill_tree(pid: int, extra: Sequence[int] = ()) -> list[int]:
    """SIGKILL ``pid``, every descendant and ``extra``; wait for them. Returns the pids killed.

    Descendants are listed before the first kill: once a parent dies its children are
    re-parented and can no longer be found from it.
    """
    victims: dict[int, psutil.Process] = {}
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        for process in [root, *root.children(recursive=True)]:
            victims[process.pid] = process
    for other in extra:
        with contextlib.suppress(psutil.Error):
            victims.setdefault(other, psutil.Process(other))
    for process in victims.values():
        with contextlib.suppress(psutil.Error):
            process.send_signal(signal.SIGKILL)
    psutil.wait_procs(list(victims.values()), timeout=_KILL_WAIT_S)
    return sorted(victims)


class Confinement:
    """One worker run under the limit: how to start it, and what happened to it."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes

    @property
    def cgroup(self) -> str | None:
        return None

    def argv(self, argv: Sequence[str]) -> list[str]:
        return list(argv)

    def limits(self) -> Confine:
        """What the supervisor applies to itself, first thing, before it starts the worker.

        Not a ``preexec_fn``: the service is multi-threaded, and code between fork and exec
        can deadlock on a lock another thread held at the fork.
        """
        return Confine()

    def memory_exceeded(self, returncode: int | None, error_text: str) -> bool:
        return False

    def peak_bytes(self) -> int | None:
        return None

    def kill_all(self, pid: int) -> list[int]:
        return kill_tree(pid)

    def release(self) -> None:
        return None


class Isolation(ABC):
    """A memory-limit mechanism; ``confine`` makes the limit for one job's worker."""

    def __init__(self, info: IsolationInfo) -> None:
        self.info = info

    @abstractmethod
    def confine(self, name: str) -> Confinement: ...


class CgroupConfinement(Confinement):
    def __init__(self, limit_bytes: int, folder: Path, version: Mechanism) -> None:
        super().__init__(limit_bytes)
        self.folder = folder
        self.v2 = version is Mechanism.CGROUP_V2
        folder.mkdir()
        if self.v2:
            (folder / "memory.max").write_text(str(limit_bytes))
            with contextlib.suppress(OSError):
                (folder / "memory.swap.max").write_text("0")
        else:
            (folder / "memory.limit_in_bytes").write_text(str(limit_bytes))
            # With swap the limit would only slow the job down: memory+swap gets the same cap.
            with contextlib.suppress(OSError):
                (folder / "memory.memsw.limit_in_bytes").write_text(str(limit_bytes))

    @property
    def cgroup(self) -> str | None:
        return str(self.folder)

    def limits(self) -> Confine:
        # The supervisor joins before it starts the worker: everything after inherits the cgroup.
        return Confine(cgroup_procs=str(self.folder / "cgroup.procs"))

    def members(self) -> list[int]:
        return [int(pid) for pid in _read(self.folder / "cgroup.procs").split() if pid.isdigit()]

    def memory_exceeded(self, returncode: int | None, error_text: str) -> bool:
        events = "memory.events" if self.v2 else "memory.oom_control"
        return _counter(_read(self.folder / events), "oom_kill") > 0

    def peak_bytes(self) -> int | None:
        name = "memory.peak" if self.v2 else "memory.max_usage_in_bytes"
        text = _read(self.folder / name).strip()
        return int(text) if text.isdigit() else None

    def kill_all(self, pid: int) -> list[int]:
        killed = kill_tree(pid, self.members())
        deadline = time.monotonic() + _KILL_WAIT_S
        while self.members() and time.monotonic() < deadline:
            killed += kill_tree(self.members()[0], self.members())
        return sorted(set(killed))

    def release(self) -> None:
        if self.members():
            self.kill_all(self.members()[0])
        with contextlib.suppress(OSError):
            self.folder.rmdir()


class CgroupIsolation(Isolation):
    def confine(self, name: str) -> Confinement:
        folder = Path(self.info.detail) / f"vmkeeper-media-{name}"
        if folder.exists():  # left by a service that died: empty it before reuse
            release_cgroup(str(folder))
        return CgroupConfinement(self.info.limit_bytes, folder, self.info.mechanism)


def release_cgroup(path: str) -> list[int]:
    """Kill everything left in a job's cgroup (after a crash of the service) and remove it."""
    folder = Path(path)
    if not folder.is_dir():
        return []
    members = [int(p) for p in _read(folder / "cgroup.procs").split() if p.isdigit()]
    killed = kill_tree(members[0], members) if members else []
    with contextlib.suppress(OSError):
        folder.rmdir()
    return killed


class SystemdConfinement(Confinement):
    def __init__(self, limit_bytes: int, systemd_run: str, unit: str) -> None:
        super().__init__(limit_bytes)
        self.systemd_run = systemd_run
        self.unit = unit

    def argv(self, argv: Sequence[str]) -> list[str]:
        user = [] if os.geteuid() == 0 else ["--user"]
        return [self.systemd_run, *user, "--scope", "--quiet", "--collect", "--unit", self.unit,
                "-p", f"MemoryMax={self.limit_bytes}", "-p", "MemorySwapMax=0", "--", *argv]

    def memory_exceeded(self, returncode: int | None, error_text: str) -> bool:
        # The scope is collected when it ends; a SIGKILL we did not send is systemd's OOM kill.
        return returncode == -signal.SIGKILL or "code -9" in error_text


class SystemdIsolation(Isolation):
    def confine(self, name: str) -> Confinement:
        return SystemdConfinement(self.info.limit_bytes, self.info.detail,
                                  f"vmkeeper-media-{name}.scope")


class RlimitConfinement(Confinement):
    def limits(self) -> Confine:
        return Confine(rlimit_as_bytes=self.limit_bytes)

    def memory_exceeded(self, returncode: int | None, error_text: str) -> bool:
        return bool(_ALLOCATION_FAILED.search(error_text))


class RlimitIsolation(Isolation):
    def confine(self, name: str) -> Confinement:
        return RlimitConfinement(self.info.limit_bytes)
