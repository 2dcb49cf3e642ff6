"""Start and follow a media worker: ``posix_spawn`` in its own session, its exit through a pidfd.

Standard library only, and the one place a worker process is started: the supervisor imports
this (its memory counts in the reversal's tree), and so does the ``vmkeeper`` program's entry
before it loads anything else, to start the worker of ``media reverse`` first
(``media/warm.py``). Every other process starts in :mod:`vmkeeper.proc`, but proc imports psutil,
``subprocess`` and the package's logging (~1.4 MiB of modules, and ~0.1 s of imports on this VM
kind): the supervisor must hold none of that while the worker runs, and the entry must not wait
for it. The semantics are proc's: argv only, the child in its own session (its own group,
killed whole), and never left behind (the owner kills it on any way out).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import sys
import time

WORKER_MODULE = "vmkeeper.media.worker"

# PyAV's decoder and x264 run with one thread each, but glibc would still give every thread
# that ever mallocs its own arena (64 MiB of address space, pages kept after free): two arenas
# bound that, at no cost for a single-threaded worker. A fixed mmap threshold keeps every
# block of 128 KiB or more (frames, packets) out of the heap: glibc's default raises the
# threshold to the largest block freed, after which frame-sized blocks come from the heap and
# its holes stay resident (measured: 720p 120 s, the tree's peak 144 → 142 MiB; CPU unchanged
# within the run-to-run noise).
WORKER_ENV = {"MALLOC_ARENA_MAX": "2", "MALLOC_MMAP_THRESHOLD_": "131072"}


def temp_root() -> str:
    """The temp folder, as ``tempfile.gettempdir()`` first chooses it (without importing it)."""
    return os.environ.get("TMPDIR") or "/tmp"


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd`` (a request line to a worker's stdin pipe)."""
    while data:
        data = data[os.write(fd, data):]


def worker_argv(*args: str) -> list[str]:
    """The worker as a program: ``-P`` keeps the working folder off ``sys.path``."""
    return [sys.executable, "-P", "-m", WORKER_MODULE, *args]


class Child:
    """A started worker: its pid, the read end of its stdout and the write end of its stdin
    (if it reads one); its exit is waited for through a pidfd (Linux >= 5.3), opened then."""

    def __init__(self, pid: int, stdout: int, stdin: int | None = None) -> None:
        self.pid = pid
        self.stdout = stdout
        self.stdin = stdin
        self.code: int | None = None
        self.pidfd: int | None = None

    def poll(self) -> int | None:
        """The exit code (negative: the signal) once the worker has exited, else None; -1 if
        it is no child to wait for (another handle of it reaped it already)."""
        if self.code is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                self.code = -1
            else:
                if pid:
                    self.code = os.waitstatus_to_exitcode(status)
        return self.code

    def wait(self, deadline: float) -> int:
        """The exit code; TimeoutError when ``deadline`` (monotonic) passes first."""
        while (code := self.poll()) is None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            if self.pidfd is None:
                with contextlib.suppress(AttributeError, OSError):
                    self.pidfd = os.pidfd_open(self.pid)  # readable once it has exited
            if self.pidfd is not None:
                select.select([self.pidfd], [], [], left)
            else:
                time.sleep(min(0.05, left))
        return code

    def kill(self) -> None:
        """SIGKILL its whole group unless it has exited, and reap it (10 s at most)."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            with contextlib.suppress(TimeoutError):
                self.wait(time.monotonic() + 10)

    def close(self) -> None:
        for fd in (self.stdout, self.stdin, self.pidfd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


def spawn(argv: list[str], env: dict[str, str], *, stderr_fd: int,
          stdin_pipe: bool = False) -> Child:
    """``posix_spawn`` ``argv`` in a new session, stdout a pipe to us, stderr ``stderr_fd``,
    stdin a pipe from us if ``stdin_pipe``, else /dev/null. OSError if it cannot start.

    The child's signal mask is emptied: the CLI may start a worker with SIGTERM and SIGINT
    blocked (``supervisor.exec_supervisor``), and the worker must still die of an operator's
    ``kill``.
    """
    ours: list[int] = []
    theirs: list[int] = []
    try:
        read, write = os.pipe()  # close-on-exec; dup2 onto 1 makes the child's inheritable
        ours.append(read)
        theirs.append(write)
        actions: list[tuple[int, ...] | tuple[int, int, str, int, int]] = [
            (os.POSIX_SPAWN_DUP2, write, 1), (os.POSIX_SPAWN_DUP2, stderr_fd, 2)]
        stdin: int | None = None
        if stdin_pipe:
            child_end, stdin = os.pipe()
            ours.append(stdin)
            theirs.append(child_end)
            actions.append((os.POSIX_SPAWN_DUP2, child_end, 0))
        else:
            actions.append((os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0))
        pid = os.posix_spawn(argv[0], argv, env, setsid=True, setsigmask=(),
                             file_actions=actions)
    except BaseException:
        for fd in ours:
            os.close(fd)
        raise
    finally:
        for fd in theirs:
            os.close(fd)
    return Child(pid, read, stdin)
