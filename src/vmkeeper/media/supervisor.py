"""Run one checked reversal: the worker in its own process group, the deadline, rename, log, result.

``vmkeeper media reverse`` does what needs its libraries first (settings, input checks, probe,
the job), then replaces itself with ``python -S -P …/media/supervisor.py JOB_JSON``: the process
that waits for the worker while it runs is then a bare interpreter (~15 MiB RSS), not the CLI
with typer, rich, pydantic, structlog and httpx (~49 MiB), and the reversal's process tree is the
worker plus that. :func:`vmkeeper.media.service.reverse` (the job service, the tests) runs the
same :func:`supervise` in-process, so there is one implementation of spawn, deadline, rename,
clean-up and the log record.

The guarantees, whichever process runs this: the worker starts in its own session (its own
process group); when the deadline passes, or anything goes wrong, the whole group is killed;
the private temporary directory and the partial file are removed whatever happens; DST is
replaced only by an output the worker verified (frame count, duration, audio length); one JSON
log record per reversal on stderr.

Imports: the standard library and :mod:`vmkeeper.media.job` only. As a script it registers
``vmkeeper`` as a bare package (as ``media/worker.py`` does) so the package's ``__init__``
(structlog) does not run; ``-P`` keeps ``media/`` off ``sys.path`` (its ``queue.py`` would shadow
the standard library's) and ``-S`` skips ``site`` (nothing here comes from site-packages).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import selectors
import shutil
import signal

# Only vmkeeper.proc imports subprocess elsewhere, but proc imports psutil (and the package): the
# point of this process is to hold none of that while the worker runs. Popen here keeps proc's
# semantics: argv only, the child in its own session, its whole group killed on the deadline
# and on any way out of the wait.
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable, Sequence
from typing import Any, NoReturn, Protocol


def _bare_package() -> None:
    """Make ``vmkeeper`` importable without running its ``__init__`` (see the module doc)."""
    if "vmkeeper" in sys.modules:
        return
    package = types.ModuleType("vmkeeper")
    package.__path__ = [os.path.dirname(os.path.dirname(os.path.abspath(__file__)))]
    sys.modules["vmkeeper"] = package


if __name__ == "__main__":
    _bare_package()

# After _bare_package: run as a script, these must not import vmkeeper's __init__.
from vmkeeper import logrecord  # noqa: E402
from vmkeeper.media.job import ReverseJob, ReverseStats, SupervisedReversal  # noqa: E402

Progress = Callable[[str], None]

SCRIPT = os.path.abspath(__file__)
WORKER_SCRIPT = os.path.join(os.path.dirname(SCRIPT), "worker.py")
# PyAV's decoder and x264 run with one thread each, but glibc would still give every thread
# that ever mallocs its own arena (64 MiB of address space, pages kept after free): two arenas
# bound that, at no cost for a single-threaded worker.
WORKER_ENV = {"MALLOC_ARENA_MAX": "2"}
_POLL_S = 0.2


class Log(Protocol):
    def info(self, event: str, **fields: Any) -> Any: ...

    def warning(self, event: str, **fields: Any) -> Any: ...


class JsonLog:
    """The CLI's structlog record (vmkeeper.logrecord) without structlog."""

    def _write(self, level: str, event: str, fields: dict[str, Any]) -> None:
        sys.stderr.write(logrecord.line(event, level, **fields) + "\n")
        sys.stderr.flush()

    def info(self, event: str, **fields: Any) -> None:
        self._write("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._write("warning", event, fields)


class Failed(Exception):
    """The reversal failed or timed out; the message is the result's ``error``."""


def rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (0 when gone or not on Linux)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _progress_line(message: dict[str, Any]) -> str:
    done, total = int(message["done"]), int(message["total"])
    return f"reversed {done} of {total} frames ({100 * done // max(total, 1)}%)"


def _follow(child: subprocess.Popen[bytes], deadline: float,
            progress: Progress) -> tuple[dict[str, Any] | None, int]:
    """Read the worker's JSON lines until EOF; TimeoutError when the deadline passes."""
    stream = child.stdout
    assert stream is not None
    answer: dict[str, Any] | None = None
    peak_tree = 0
    own = os.getpid()
    buffer = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            peak_tree = max(peak_tree, rss(own) + rss(child.pid))
            if not selector.select(timeout=min(_POLL_S, left)):
                continue
            chunk = os.read(stream.fileno(), 65536)
            if not chunk:
                return answer, peak_tree
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                try:
                    message = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if not isinstance(message, dict):
                    continue
                if message.get("type") == "progress":
                    progress(_progress_line(message))
                elif message.get("type") in ("result", "error"):
                    answer = message


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def run_worker(plan: SupervisedReversal, job: ReverseJob,
               progress: Progress) -> tuple[ReverseStats, int]:
    """Run the PyAV worker on ``job`` until it answers; its group is killed on the way out."""
    argv = [sys.executable, "-P", WORKER_SCRIPT, "reverse", job.to_json()]
    log_path = os.path.join(job.temp_dir, "worker.log")
    with open(log_path, "wb") as worker_log:
        child = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=worker_log, env={**os.environ, **WORKER_ENV},
                                 start_new_session=True)
    try:
        answer, peak_tree = _follow(child, plan.deadline, progress)
        code = child.wait(timeout=max(plan.deadline - time.monotonic(), 0.001))
    except (TimeoutError, subprocess.TimeoutExpired):
        raise Failed(
            f"Reversing {plan.source} took longer than {plan.timeout_ms} ms "
            "(media.reverse_timeout_ms, FFMPEG_REVERSE_TIMEOUT_MS) and was stopped; "
            "nothing was written."
        ) from None
    finally:
        if child.poll() is None:
            _kill_group(child.pid)
            with contextlib.suppress(Exception):
                child.wait(timeout=10)
        assert child.stdout is not None
        child.stdout.close()
    answer = answer or {}
    if code != 0 or answer.get("type") != "result":
        with open(log_path, encoding="utf-8", errors="replace") as text:
            stderr = text.read()
        reason = answer.get("message") or _tail(stderr, 5) or \
            f"the worker exited with code {code}"
        raise Failed(f"Reversing {plan.source} failed: {reason}")
    return ReverseStats.from_dict(answer), peak_tree


def _reverse(plan: SupervisedReversal, progress: Progress) -> tuple[ReverseStats, int]:
    temp_dir = tempfile.mkdtemp(prefix="vmkeeper-reverse-")
    try:
        os.makedirs(os.path.dirname(plan.destination) or ".", exist_ok=True)
        progress(f"reversing {plan.record['source']} into {plan.destination}")
        stats, peak_tree = run_worker(plan, plan.worker_job(temp_dir), progress)
        os.replace(plan.partial, plan.destination)
        return stats, peak_tree
    except OSError as error:
        raise Failed(f"Reversing {plan.source} failed: {error}") from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(plan.partial)
        shutil.rmtree(temp_dir, ignore_errors=True)


def result(ok: bool, output: str | None, info: dict[str, Any] | None, seconds: float,
           error: str | None, *, rejected: bool = False, stats: dict[str, Any] | None = None,
           output_size_bytes: int | None = None,
           peak_memory_bytes: int | None = None) -> dict[str, Any]:
    """The result as ``--json`` prints it: the keys and order of ``service.ReverseResult``."""
    return {"ok": ok, "output": output, "input": info, "seconds": seconds, "error": error,
            "rejected": rejected, "stats": stats, "output_size_bytes": output_size_bytes,
            "peak_memory_bytes": peak_memory_bytes}


def supervise(plan: SupervisedReversal, progress: Progress, log: Log) -> dict[str, Any]:
    """Reverse ``plan`` (inputs already checked), log one record, return the result's JSON."""
    try:
        stats, peak_tree = _reverse(plan, progress)
    except Failed as error:
        seconds = time.monotonic() - plan.started
        log.warning("media.reverse", ok=False, rejected=False, error=str(error),
                    seconds=round(seconds, 3), **plan.record)
        return result(False, None, plan.input, seconds, str(error))
    seconds = time.monotonic() - plan.started
    size = os.stat(plan.destination).st_size
    peak = max(peak_tree, stats.worker_peak_rss_bytes)
    log.info("media.reverse", ok=True, seconds=round(seconds, 3), output_size_bytes=size,
             pieces=stats.pieces, frames=stats.frames, frames_decoded=stats.frames_decoded,
             audio_samples=stats.audio_samples, peak_memory_bytes=peak,
             worker_peak_rss_bytes=stats.worker_peak_rss_bytes, **plan.record)
    return result(True, plan.destination, plan.input, seconds, None,
                  stats=dataclasses.asdict(stats), output_size_bytes=size,
                  peak_memory_bytes=peak)


def _styled(text: str, code: str, stream: Any) -> str:
    # What rich printed for the CLI's "[red]error:[/red]": colour only on a terminal.
    if os.environ.get("NO_COLOR") or not stream.isatty():
        return text
    return f"\x1b[{code}m{text}\x1b[0m"


def stderr_progress(message: str) -> None:
    sys.stderr.write(f"{_styled('…', '2', sys.stderr)} {message}\n")
    sys.stderr.flush()


def report(outcome: dict[str, Any], as_json: bool) -> int:
    """Print the result as the CLI does (one JSON object, or a human line); the exit code."""
    if as_json:
        sys.stdout.write(json.dumps(outcome, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()
    elif outcome["ok"] and outcome["stats"]:
        stats = outcome["stats"]
        sys.stdout.write(f"{outcome['output']}: {stats['frames']} frames reversed in "
                         f"{outcome['seconds']:.1f} s ({stats['pieces']} pieces)\n")
        sys.stdout.flush()
    else:
        sys.stderr.write(f"{_styled('error:', '31', sys.stderr)} {outcome['error']}\n")
        sys.stderr.flush()
    return 0 if outcome["ok"] else 1


def exec_supervisor(plan: SupervisedReversal) -> NoReturn:
    """Replace this process (the CLI) with the supervisor; OSError if exec fails."""
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-S", "-P", SCRIPT, plan.to_json()])


def _stop(signum: int, _frame: object) -> NoReturn:
    # SIGTERM/SIGHUP unwind through the finally blocks: the worker's group is killed, the temp
    # dir and the partial file removed.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write("usage: python -S -P …/media/supervisor.py JOB_JSON\n")
        return 2
    plan = SupervisedReversal.from_json(argv[0])
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    try:
        outcome = supervise(plan, (lambda _m: None) if plan.as_json else stderr_progress,
                            JsonLog())
    except KeyboardInterrupt:
        sys.stderr.write("interrupted.\n")
        return 130
    return report(outcome, plan.as_json)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
