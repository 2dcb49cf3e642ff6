"""The worker `media reverse` starts first: it probes SRC, then reverses it for the supervisor.

A reversal used to start two interpreters that each load PyAV: the probe child, then the worker.
Now the CLI starts one worker (``python -P -m vmkeeper.media.worker serve SRC DST``; SRC and
DST only name the job in ``ps``) before it loads its settings, so PyAV loads while pydantic
does; :func:`vmkeeper.media.service.prepare` asks it for the probe after the file checks
(nothing reads SRC before them); and the plan hands it (:class:`vmkeeper.media.job.KeptWorker`:
its pid and two pipe ends) to :func:`vmkeeper.media.supervisor.exec_supervisor`, which sends it
the job and passes it on to the supervisor across ``os.execv``. A
refused input, a probe timeout or any way out of the CLI stops it (``proc.start``'s block);
it is in its own session, and asked for the parent-death signal, as every worker is. Measured
(0.5 s of 720p, fastest of seven): 0.72 → 0.63 s of wall time, 0.62 → 0.53 s of user CPU.

Only the CLI does this: the job service prepares the next job while one runs
(``runner.Lookahead``) and its supervisor starts the worker under the job's memory limit.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from vmkeeper import proc
from vmkeeper.errors import CommandNotFound, CommandTimeout
from vmkeeper.media.job import KeptWorker, request_line
from vmkeeper.media.supervisor import WORKER_ENV, WORKER_MODULE

_TAIL_BYTES = 4096
# proc.start's deadline serves Running.wait, which nothing here calls: the probe has its own
# timeout (FFPROBE_TIMEOUT_MS), the supervisor the reversal's deadline, and leaving the block
# kills the worker.
_UNBOUNDED_S = 24 * 3600.0


class WarmWorker:
    """A started ``worker serve``: :meth:`probe` once, then :meth:`hand_over` to the supervisor."""

    def __init__(self, running: proc.Running, stderr: IO[bytes]) -> None:
        self.running = running
        self.stderr = stderr

    def _send(self, line: bytes) -> None:
        stdin = self.running.stdin
        assert stdin is not None
        stdin.write(line)
        stdin.flush()

    def probe(self, path: Path, timeout_s: float) -> proc.Result:
        """The probe's output as the probe child's would be; CommandTimeout (the worker is
        killed) when no answer came within ``timeout_s``."""
        started = time.monotonic()
        try:
            self._send(request_line({"type": "probe", "path": str(path)}))
        except OSError:  # it died before it was asked: its exit and stderr say why
            return self._ended(b"", started)
        stdout = self.running.stdout
        assert stdout is not None
        fd = stdout.fileno()
        answer = bytearray()  # grows in place: a huge line (hostile tags) stays linear
        deadline = started + timeout_s
        while not answer.endswith(b"\n"):
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([fd], [], [], left)[0]:
                self.running.kill()
                raise CommandTimeout(f"the probe of {path} timed out and was killed.")
            chunk = os.read(fd, 65536)  # unbuffered: nothing past this line is read
            if not chunk:  # it exited without an answer (a crash inside FFmpeg)
                return self._ended(answer, started)
            answer += chunk
        text = answer.decode(errors="replace")
        return proc.Result(tuple(self.running.argv), 1 if _is_error(text) else 0, text, "",
                           time.monotonic() - started)

    def _ended(self, answer: bytes | bytearray, started: float) -> proc.Result:
        self.running.kill()  # reaps it: its own exit code if it had exited, else -9
        return proc.Result(tuple(self.running.argv), self.running.popen.returncode or 1,
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
        stdin, stdout = self.running.stdin, self.running.stdout
        if self.running.poll() is not None or stdin is None or stdout is None:
            return None
        ends = [os.dup(stdin.fileno()), os.dup(stdout.fileno())]
        for fd in ends:
            os.set_inheritable(fd, True)
        return KeptWorker(self.running.pid, ends[0], ends[1])


def _is_error(text: str) -> bool:
    try:
        message = json.loads(text)
    except json.JSONDecodeError:
        return True
    return not isinstance(message, dict) or message.get("type") == "error"


@contextlib.contextmanager
def warm_worker(source: Path, destination: Path) -> Iterator[WarmWorker | None]:
    """A worker started now, stopped when the block exits unless the process exec'd first.

    None if it could not start (the reversal then starts its own, as before).
    """
    with contextlib.ExitStack() as stack:
        try:
            # Its stderr until it reverses: read for the reason of a failed probe.
            stderr = stack.enter_context(tempfile.TemporaryFile())
            running = stack.enter_context(proc.start(
                [sys.executable, "-P", "-m", WORKER_MODULE, "serve", str(source), str(destination)],
                timeout=_UNBOUNDED_S, env=WORKER_ENV, stdin=proc.PIPE, stdout=proc.PIPE,
                stderr=stderr))
        except (CommandNotFound, OSError):  # no temp folder, no process slot: as before, then
            yield None
            return
        yield WarmWorker(running, stderr)
