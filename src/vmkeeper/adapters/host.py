"""The host: disk and inodes (os.statvfs), memory and swap (psutil), listening sockets.

Listening sockets come from psutil.net_connections, which needs no program; when it cannot
see other users' sockets (unprivileged, or a kernel that refuses), `ss -ltnp` is parsed instead.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import psutil

from vmkeeper import proc
from vmkeeper.errors import CommandError


@dataclass(frozen=True)
class FsUsage:
    path: Path
    mount: str
    bytes_total: int
    bytes_free: int  # available to unprivileged users (what df shows as Avail)
    inodes_total: int
    inodes_free: int
    device: int

    @property
    def used_pct(self) -> float:
        if self.bytes_total <= 0:
            return 0.0
        return 100.0 * (self.bytes_total - self.bytes_free) / self.bytes_total

    @property
    def inodes_used_pct(self) -> float | None:
        # Some filesystems (btrfs, overlay on some kernels) report 0 inodes: no inode limit.
        if self.inodes_total <= 0:
            return None
        return 100.0 * (self.inodes_total - self.inodes_free) / self.inodes_total


def _existing_ancestor(path: Path) -> Path:
    current = path
    while not current.exists() and current != current.parent:
        current = current.parent
    return current


def mount_point(path: Path) -> str:
    current = _existing_ancestor(path.resolve())
    while not os.path.ismount(current) and current != current.parent:
        current = current.parent
    return str(current)


def fs_usage(path: Path) -> FsUsage:
    """Usage of the filesystem holding ``path`` (or its nearest existing ancestor)."""
    target = _existing_ancestor(path)
    stat = os.statvfs(target)
    return FsUsage(
        path=path,
        mount=mount_point(target),
        bytes_total=stat.f_blocks * stat.f_frsize,
        bytes_free=stat.f_bavail * stat.f_frsize,
        inodes_total=stat.f_files,
        inodes_free=stat.f_favail,
        device=os.stat(target).st_dev,
    )


@dataclass(frozen=True)
class MemoryUsage:
    total: int
    available: int
    swap_total: int
    swap_used: int

    @property
    def available_pct(self) -> float:
        return 100.0 * self.available / self.total if self.total else 0.0

    @property
    def swap_used_pct(self) -> float | None:
        return 100.0 * self.swap_used / self.swap_total if self.swap_total else None


def memory() -> MemoryUsage:
    virtual = psutil.virtual_memory()
    swap = psutil.swap_memory()
    return MemoryUsage(virtual.total, virtual.available, swap.total, swap.used)


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    pid: int | None
    process: str | None


def _process_name(pid: int | None) -> str | None:
    if not pid:
        return None
    try:
        return str(psutil.Process(pid).name())
    except psutil.Error:
        return None


def listeners_psutil(ports: Iterable[int]) -> list[Listener]:
    wanted = set(ports)
    found: list[Listener] = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status != psutil.CONN_LISTEN or not conn.laddr:
            continue
        if conn.laddr.port in wanted:
            found.append(
                Listener(conn.laddr.ip, conn.laddr.port, conn.pid, _process_name(conn.pid))
            )
    return found


# `users:(("node",pid=1234,fd=21),("node",pid=1240,fd=21))` — the first process is enough.
_SS_USER = re.compile(r'users:\(\("(?P<name>[^"]*)",pid=(?P<pid>\d+)')


def parse_ss(text: str) -> list[Listener]:
    """`ss -ltnp` (or `-Hltnp`) output: one Listener per LISTEN line."""
    result: list[Listener] = []
    for line in text.splitlines():
        fields = line.split()
        if not fields or fields[0] in ("State", "Netid"):
            continue
        if fields[0] == "tcp":  # `ss -a` style with a Netid column
            fields = fields[1:]
        if len(fields) < 4 or fields[0] != "LISTEN":
            continue
        local = fields[3]
        address, _, port_text = local.rpartition(":")
        try:
            port = int(port_text)
        except ValueError:
            continue
        user = _SS_USER.search(line)
        result.append(Listener(
            address.strip("[]"), port,
            int(user["pid"]) if user else None, user["name"] if user else None,
        ))
    return result


def ss_argv() -> list[str]:
    return ["ss", "-Hltnp"]


def listeners(ports: Iterable[int], *, timeout: float, runner: proc.Runner = proc.run
              ) -> tuple[list[Listener], str]:
    """Listening sockets on ``ports`` with their owners, and which source said so."""
    wanted = list(ports)
    try:
        found = listeners_psutil(wanted)
        # psutil lists the socket but not its owner when the owner is another user's; ss -p
        # has the same limit unprivileged, so a missing owner is reported as unknown, not retried.
        return found, "psutil"
    except (psutil.AccessDenied, PermissionError, OSError):
        pass
    try:
        text = runner(ss_argv(), timeout=timeout).stdout
    except CommandError:
        return [], "none"
    return [item for item in parse_ss(text) if item.port in set(wanted)], "ss"


def kill_processes(processes: list[psutil.Process], timeout: float = 10) -> list[int]:
    """SIGKILL each process (gone ones are fine) and wait until all have exited; their pids."""
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(processes, timeout=timeout)
    return [process.pid for process in processes]


def processes_working_in(folder: Path) -> list[psutil.Process]:
    """Processes (other than this one) whose working directory is ``folder`` or below it."""
    inside = str(folder.resolve()) + os.sep
    found = []
    for process in psutil.process_iter(["pid", "cwd"]):
        cwd = process.info.get("cwd") or ""
        if (cwd + os.sep).startswith(inside) and process.info["pid"] != os.getpid():
            found.append(process)
    return found


def connections_to(port: int) -> int:
    """Open TCP connections to 127.0.0.1:``port`` (clients' side): Apache's to a frontend.

    Read from /proc/net/tcp by psutil, which lists every user's sockets (without their pids):
    Apache runs as www-data, vmkeeper as the deploying user.
    """
    return sum(
        1 for conn in psutil.net_connections(kind="tcp")
        if conn.raddr and conn.raddr.port == port and conn.status == psutil.CONN_ESTABLISHED
        and conn.raddr.ip in ("127.0.0.1", "::1", "::ffff:127.0.0.1")
    )
