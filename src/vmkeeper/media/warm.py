"""The worker `media reverse` starts first: it probes SRC, then reverses it for the supervisor.

A reversal used to start two interpreters that each load PyAV: the probe child, then the worker.
Now the CLI starts one worker (``python -P -m vmkeeper.media.worker serve SRC DST``; SRC and
DST only name the job in ``ps``) before anything else: the ``vmkeeper`` program's entry
(``cli/entry.py``) calls :func:`start_early` before it imports the CLI, so PyAV loads while
typer, rich and pydantic do. :func:`vmkeeper.media.service.prepare` asks it for the probe after
the file checks (the worker probes and opens a small regular SRC before it is asked, and that
answer serves only the same file unchanged: ``worker._probe_ahead``); and the plan hands it
(:class:`vmkeeper.media.job.KeptWorker`: its pid and two pipe ends) to
:func:`vmkeeper.media.supervisor.exec_supervisor`, which sends it the job and passes it on to
the supervisor across ``os.execv``. A refused input, a probe timeout or any way out of the CLI
stops it (:func:`warm_worker`'s block; an early worker the command never took, the entry's
``finally``); it is in its own session, and asked for the parent-death signal, as every worker
is. Measured (0.5 s of 720p, fastest of seven): 0.72 → 0.63 s of wall time, 0.62 → 0.53 s of
user CPU when it started in the command; started by the entry: docs/media.md.

Only the CLI does this: the job service prepares the next job while one runs
(``runner.Lookahead``) and its supervisor starts the worker under the job's memory limit.

The top of this module is what starting the worker needs (a few standard modules and
``media/child.py``): the entry imports it before anything else, and every module more is that
much later a start (json, pathlib, typing and ``media/job.py`` were ~17 ms of the 25 ms this
import took on this VM kind); they are imported where they are used.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import time

from vmkeeper.media.child import WORKER_ENV, Child, spawn, temp_root, worker_argv, write_all

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (mypy knows the name)
if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path
    from typing import IO

    from vmkeeper import proc
    from vmkeeper.media.job import KeptWorker

_TAIL_BYTES = 4096


class WarmWorker:
    """A started ``worker serve``: :meth:`probe` once, then :meth:`hand_over` to the supervisor."""

    def __init__(self, child: Child, stderr: IO[bytes], argv: list[str]) -> None:
        self.child = child
        self.stderr = stderr
        self.argv = argv

    def _send(self, line: bytes) -> None:
        assert self.child.stdin is not None
        write_all(self.child.stdin, line)

    def probe(self, path: Path, timeout_s: float) -> proc.Result:
        """The probe's output as the probe child's would be; CommandTimeout (the worker is
        killed) when no answer came within ``timeout_s``."""
        from vmkeeper import proc
        from vmkeeper.errors import CommandTimeout
        from vmkeeper.media.job import request_line

        started = time.monotonic()
        try:
            self._send(request_line({"type": "probe", "path": str(path)}))
        except OSError:  # it died before it was asked: its exit and stderr say why
            return self._ended(b"", started)
        fd = self.child.stdout
        answer = bytearray()  # grows in place: a huge line (hostile tags) stays linear
        deadline = started + timeout_s
        while not answer.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.child.kill()
                raise CommandTimeout(f"the probe of {path} timed out and was killed.")
            chunk = os.read(fd, 65536)  # unbuffered: nothing past this line is read
            if not chunk:  # it exited without an answer (a crash inside FFmpeg)
                return self._ended(answer, started)
            answer += chunk
        text = answer.decode(errors="replace")
        message = _message(text)
        if message is not None and _seconds(message.get("probe_s")) > timeout_s:
            self.child.kill()  # probed before it was asked, for longer than the probe may take
            raise CommandTimeout(f"the probe of {path} timed out and was killed.")
        error = message is None or message.get("type") == "error"
        return proc.Result(tuple(self.argv), 1 if error else 0, text, "",
                           time.monotonic() - started)

    def _ended(self, answer: bytes | bytearray, started: float) -> proc.Result:
        from vmkeeper import proc

        self.child.kill()  # reaps it: its own exit code if it had exited, else -9
        return proc.Result(tuple(self.argv), self.child.code or 1,
                           answer.decode(errors="replace"), self._tail(),
                           time.monotonic() - started)

    def _tail(self) -> str:
        with contextlib.suppress(OSError):
            self.stderr.seek(0, os.SEEK_END)
            self.stderr.seek(max(self.stderr.tell() - _TAIL_BYTES, 0))
            return self.stderr.read().decode(errors="replace")
        return ""

    def hand_over(self) -> KeptWorker | None:
        """Its pid and inheritable copies of its pipe ends, for the supervisor (which closes
        them); None once it has exited."""
        from vmkeeper.media.job import KeptWorker

        stdin = self.child.stdin
        if self.child.poll() is not None or stdin is None:
            return None
        ends = [os.dup(stdin), os.dup(self.child.stdout)]
        for fd in ends:
            os.set_inheritable(fd, True)
        return KeptWorker(self.child.pid, ends[0], ends[1])

    def stop(self) -> None:
        self.child.kill()
        self.child.close()
        self.stderr.close()


def _message(text: str) -> dict[str, object] | None:
    """The worker's answer as a JSON object; None if it is not one."""
    import json

    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        return None
    return message if isinstance(message, dict) else None


def _seconds(value: object) -> float:
    return float(value) if isinstance(value, (int, float)) else 0.0


def _anonymous_file() -> IO[bytes]:
    """A file with no name in the temp folder, for the worker's stderr until it reverses."""
    folder = temp_root()
    nameless = getattr(os, "O_TMPFILE", 0)  # Linux only
    try:
        if nameless:
            return os.fdopen(os.open(folder, nameless | os.O_RDWR | os.O_CLOEXEC, 0o600), "w+b")
    except OSError as error:
        if error.errno not in (errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL):
            raise
    import tempfile  # a filesystem (or kernel) without O_TMPFILE: what tempfile does there

    return tempfile.TemporaryFile(dir=folder)


def _start(source: str, destination: str) -> WarmWorker | None:
    """A ``worker serve`` started now; None if it cannot be (no temp file, no process)."""
    try:
        stderr = _anonymous_file()
    except OSError:
        return None
    argv = worker_argv("serve", source, destination)
    try:
        child = spawn(argv, {**os.environ, **WORKER_ENV}, stderr_fd=stderr.fileno(),
                      stdin_pipe=True)
    except OSError:
        stderr.close()
        return None
    return WarmWorker(child, stderr, argv)


_early: tuple[tuple[str, str], WarmWorker] | None = None


def start_early(argv: Sequence[str]) -> None:
    """Start the worker now if ``argv`` (the program's arguments) looks like ``media reverse
    SRC DST``; :func:`warm_worker` takes it if the CLI parses the same SRC and DST, and
    :func:`discard_early` stops it otherwise. A wrong guess costs a worker's start, no more."""
    global _early
    args = list(argv)
    for at in range(len(args) - 1):
        if args[at:at + 2] == ["media", "reverse"]:
            rest = args[at + 2:]
            operands = [arg for arg in rest if not arg.startswith("-")]
            if len(operands) != 2 or "--help" in rest or "--" in rest:
                return
            # As given (pathlib is not loaded yet): _take_early compares them as typer's Path
            # spells them ("./a.mp4" is "a.mp4").
            source, destination = operands
            worker = _start(source, destination)
            if worker is not None:
                _early = ((source, destination), worker)
            return


def discard_early() -> None:
    """Stop the early worker unless the command took it."""
    global _early
    if _early is not None:
        _early[1].stop()
        _early = None


def _take_early(source: str, destination: str) -> WarmWorker | None:
    global _early
    if _early is None:
        return None
    from pathlib import Path

    names, worker = _early
    _early = None
    if tuple(str(Path(name)) for name in names) == (source, destination) and \
            worker.child.poll() is None:
        return worker
    worker.stop()
    return None


@contextlib.contextmanager
def warm_worker(source: Path, destination: Path) -> Iterator[WarmWorker | None]:
    """A worker started now (or by the entry, for these SRC and DST), stopped when the block
    exits unless the process exec'd first.

    None if it could not start (the reversal then starts its own, as before).
    """
    worker = _take_early(str(source), str(destination)) or _start(str(source), str(destination))
    if worker is None:
        yield None
        return
    try:
        yield worker
    finally:
        worker.stop()
