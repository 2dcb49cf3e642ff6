"""Run one checked reversal: the worker in its own process group, the deadline, rename, log, result.

The one supervisor of a reversal, whoever asked for it. ``vmkeeper media reverse`` does what
needs its libraries first (settings, input checks, probe, the job), hands the worker its job
(:func:`launch`), then replaces itself with ``python -P -m vmkeeper.media.supervisor JOB_JSON``,
which follows that worker (:func:`exec_supervisor`); the job service starts the same command,
under the job's memory limit, for each job; :func:`vmkeeper.media.service.reverse` (the tests)
runs :func:`supervise` in-process. The process that waits for the worker while it runs is then
a bare interpreter (~15 MiB RSS), not the CLI with typer, rich, pydantic, structlog and httpx
(~49 MiB) nor the service: the reversal's process tree is the worker plus that.

The guarantees, whichever process runs this: the worker starts in its own session (its own
process group); when the one deadline passes, or anything goes wrong, the whole group is
killed; the output is written in a private folder beside DST, created exclusively (mode 0700,
``O_EXCL|O_NOFOLLOW``), so no planted symlink is written through, and renamed over DST (which
replaces a symlink at DST, never writes through it) only once the worker verified it (frame
count, duration, audio length); the private folders are removed whatever happens; one JSON log
record per reversal on stderr when asked for.

Imports: the standard library, :mod:`vmkeeper.media.job`, :mod:`vmkeeper.media.child` and
:mod:`vmkeeper.progress` only (importing the package runs nothing) — and of the standard
library not ``subprocess``, ``tempfile``, ``shutil`` or ``selectors``: with what they import
(threading, locale, random, bz2, lzma…) they were 2.5 MiB of this process's 14.6 MiB RSS, in a
tree that must stay within 1.1x of a forward transcode's memory (issue 18). The worker is
started with ``posix_spawn`` and waited for through a pidfd (``media/child.py``); the private
folders are made and removed here (a few lines each: what ``mkdtemp`` and
``rmtree(ignore_errors=True)`` do for folders only we write in).
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import select
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any, NoReturn, Protocol

from vmkeeper import telemetry
from vmkeeper.media.child import WORKER_ENV, Child, spawn, temp_root, worker_argv, write_all
from vmkeeper.media.job import (
    Confine,
    KeptWorker,
    Launched,
    ReverseResult,
    ReverseStats,
    SupervisedReversal,
    request_line,
)
from vmkeeper.progress import Phase, Progress, ProgressEvent, silent

MODULE = "vmkeeper.media.supervisor"
_POLL_S = 0.2
# What would end the CLI between handing the job to the worker and the supervisor's handlers:
# deferred across the exec (exec_supervisor).
DEFERRED_SIGNALS = frozenset({signal.SIGTERM, signal.SIGHUP, signal.SIGINT})


class Log(Protocol):
    def info(self, event: str, **fields: Any) -> Any: ...

    def warning(self, event: str, **fields: Any) -> Any: ...


class JsonLog:
    """The CLI's structlog record (vmkeeper.logrecord) without structlog."""

    def _write(self, level: str, event: str, fields: dict[str, Any]) -> None:
        from vmkeeper import logrecord  # datetime: only when a record is asked for

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


def _progress_event(message: dict[str, Any]) -> ProgressEvent:
    done, total = int(message["done"]), int(message["total"])
    return ProgressEvent(f"reversed {done} of {total} frames ({100 * done // max(total, 1)}%)",
                         Phase.COUNT, step="reverse", done=done, total=total)


def _send_job(kept: KeptWorker, request: dict[str, Any]) -> tuple[int, int]:
    """The CLI's warm worker (our child since before the exec) sent ``request``: (pid, the read
    end of its stdout); its stdin is closed, it reads nothing more."""
    try:
        write_all(kept.stdin_fd, request_line(request))
    except OSError:
        pass  # it has exited: its exit code and log say why
    finally:
        os.close(kept.stdin_fd)
    return kept.pid, kept.stdout_fd


def _follow(child: Child, deadline: float,
            progress: Progress) -> tuple[dict[str, Any] | None, int]:
    """Read the worker's JSON lines until EOF; TimeoutError when the deadline passes."""
    answer: dict[str, Any] | None = None
    peak_tree = 0
    own = os.getpid()
    buffer = b""
    poller = select.poll()
    poller.register(child.stdout, select.POLLIN)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        peak_tree = max(peak_tree, rss(own) + rss(child.pid))
        if not poller.poll(min(_POLL_S, left) * 1000):
            continue
        chunk = os.read(child.stdout, 65536)
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
                progress(_progress_event(message))
            elif message.get("type") in ("result", "error"):
                answer = message


def _tail(text: str, lines: int) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _wait_for(plan: SupervisedReversal, child: Child, log_path: str,
              progress: Progress) -> tuple[ReverseStats, int]:
    """Follow the worker until it answers and exits; Failed unless it verified its output."""
    try:
        answer, peak_tree = _follow(child, plan.deadline, progress)
        code = child.wait(plan.deadline)
    except TimeoutError:
        raise Failed(
            f"Reversing {plan.source} took longer than {plan.timeout_ms} ms "
            "(media.reverse_timeout_ms, FFMPEG_REVERSE_TIMEOUT_MS) and was stopped; "
            "nothing was written."
        ) from None
    answer = answer or {}
    if code != 0 or answer.get("type") != "result":
        with open(log_path, encoding="utf-8", errors="replace") as text:
            stderr = text.read()
        reason = answer.get("message") or _tail(stderr, 5) or \
            f"the worker exited with code {code}"
        raise Failed(f"Reversing {plan.source} failed: {reason}")
    return ReverseStats.from_dict(answer), peak_tree


def private_folder(parent: str, prefix: str) -> str:
    """A new folder only we can enter (mode 0700) with a random name in ``parent``: never one
    that existed, so nothing planted there is used (``tempfile.mkdtemp``'s guarantee)."""
    for _ in range(100):
        path = os.path.join(parent, prefix + os.urandom(8).hex())
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        return path
    raise FileExistsError(f"no free name for a private folder in {parent}")


def remove_folder(path: str) -> None:
    """Remove ``path`` and what is in it, never following a symlink; errors ignored (what
    ``shutil.rmtree(path, ignore_errors=True)`` does)."""
    try:
        entries = list(os.scandir(path))
    except OSError:
        entries = []
    for entry in entries:
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                remove_folder(entry.path)
            else:
                os.unlink(entry.path)
    with contextlib.suppress(OSError):
        os.rmdir(path)


def _private_output(destination: str) -> tuple[str, str]:
    """A folder only we can enter, beside DST (one filesystem: the rename is atomic), and the
    partial output in it, created exclusively: nothing planted there can be written through."""
    folder = os.path.dirname(destination) or "."
    stem, suffix = os.path.splitext(os.path.basename(destination))
    private = private_folder(folder, f".{stem}.vmkeeper-")
    partial = os.path.join(private, f"partial{suffix}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    os.close(os.open(partial, flags, 0o666))
    return private, partial


def launch(plan: SupervisedReversal, progress: Progress = silent) -> Launched:
    """Make the private folders and hand the job to the worker: ``plan.kept``, else a new one
    (with the environment's trace context: its span is then a child of the current one).

    Failed, with nothing left behind, when a folder, the log or the worker cannot be made.
    """
    temp_dir = private = None
    sent = False
    try:
        temp_dir = private_folder(temp_root(), "vmkeeper-reverse-")
        private, partial = _private_output(plan.destination)
        progress(ProgressEvent(f"reversing {plan.record['source']} into {plan.destination}",
                               Phase.STARTED, step="reverse"))
        job = plan.worker_job(temp_dir, partial).to_json()
        log_path = os.path.join(temp_dir, "worker.log")
        with open(log_path, "wb") as worker_log:  # the worker's stderr: the failure's reason
            if plan.kept is not None:
                sent = True  # _send_job closes its stdin whatever happens
                pid, stdout = _send_job(plan.kept, {"type": "reverse", "job": job,
                                                    "log": log_path,
                                                    "env": dict(telemetry.child_env())})
            else:
                started = spawn(worker_argv("reverse", job),
                                {**os.environ, **WORKER_ENV, **telemetry.child_env()},
                                stderr_fd=worker_log.fileno())
                pid, stdout = started.pid, started.stdout
        return Launched(pid, stdout, temp_dir, private, partial, log_path)
    except BaseException as error:
        for folder in (private, temp_dir):
            if folder:
                remove_folder(folder)
        if plan.kept is not None and not sent:  # the worker itself: its owner stops it
            for fd in (plan.kept.stdin_fd, plan.kept.stdout_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
        if isinstance(error, OSError):
            raise Failed(f"Reversing {plan.source} failed: {error}") from None
        raise


def _reverse(plan: SupervisedReversal, progress: Progress) -> tuple[ReverseStats, int]:
    # A span when telemetry is on; the worker's own span is its child (TRACEPARENT).
    with telemetry.span("media job", **{"vmkeeper.media.source": str(plan.source)}):
        launched = plan.launched or launch(plan, progress)
        os.set_inheritable(launched.stdout_fd, False)  # inheritable only across the CLI's exec
        child = Child(launched.pid, launched.stdout_fd)
        try:
            if plan.launched is not None:
                # Launched by exec_supervisor, which deferred these: one that came meanwhile
                # is delivered now, inside the block that kills the worker and cleans up.
                signal.pthread_sigmask(signal.SIG_UNBLOCK, DEFERRED_SIGNALS)
            stats, peak_tree = _wait_for(plan, child, launched.log_path, progress)
            # rename(2) replaces a symlink at DST with the file; it never writes through it.
            os.replace(launched.partial, plan.destination)
            return stats, peak_tree
        except OSError as error:
            raise Failed(f"Reversing {plan.source} failed: {error}") from None
        finally:
            child.kill()
            child.close()
            for folder in (launched.private, launched.temp_dir):
                remove_folder(folder)


def supervise(plan: SupervisedReversal, progress: Progress = silent,
              log: Log | None = None) -> ReverseResult:
    """Reverse ``plan`` (inputs already checked); log one record to ``log`` if given."""
    try:
        stats, peak_tree = _reverse(plan, progress)
    except Failed as error:
        return _failure(plan, error, log)
    seconds = time.monotonic() - plan.started
    size = os.stat(plan.destination).st_size
    peak = max(peak_tree, stats.worker_peak_rss_bytes)
    if log is not None:
        log.info("media.reverse", ok=True, seconds=round(seconds, 3), output_size_bytes=size,
                 pieces=stats.pieces, frames=stats.frames, frames_decoded=stats.frames_decoded,
                 audio_samples=stats.audio_samples, peak_memory_bytes=peak,
                 worker_peak_rss_bytes=stats.worker_peak_rss_bytes, **plan.record)
    return ReverseResult(True, plan.destination, plan.input, seconds, None, stats=stats,
                         output_size_bytes=size, peak_memory_bytes=peak)


def _failure(plan: SupervisedReversal, error: Failed, log: Log | None) -> ReverseResult:
    seconds = time.monotonic() - plan.started
    if log is not None:
        log.warning("media.reverse", ok=False, rejected=False, error=str(error),
                    seconds=round(seconds, 3), **plan.record)
    return ReverseResult(False, None, plan.input, seconds, str(error))


def _styled(text: str, code: str, stream: Any) -> str:
    # What rich printed for the CLI's "[red]error:[/red]": colour only on a terminal.
    if os.environ.get("NO_COLOR") or not stream.isatty():
        return text
    return f"\x1b[{code}m{text}\x1b[0m"


def stderr_progress(event: ProgressEvent) -> None:
    sys.stderr.write(f"{_styled('…', '2', sys.stderr)} {event.message}\n")
    sys.stderr.flush()


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"


def report(outcome: ReverseResult, as_json: bool) -> int:
    """Print the result as the CLI does (one JSON object, or a human line); the exit code."""
    if as_json:
        sys.stdout.write(outcome.to_json(indent=2) + "\n")
        sys.stdout.flush()
    elif outcome.ok and outcome.stats:
        stats = outcome.stats
        sys.stdout.write(f"{outcome.output}: {_count(stats.frames, 'frame')} reversed in "
                         f"{outcome.seconds:.1f} s ({_count(stats.pieces, 'piece')})\n")
        sys.stdout.flush()
    else:
        sys.stderr.write(f"{_styled('error:', '31', sys.stderr)} {outcome.error}\n")
        sys.stderr.flush()
    return 0 if outcome.ok else 1


def command(plan: SupervisedReversal) -> list[str]:
    """The supervisor as a program: ``-P`` keeps the working folder off ``sys.path``."""
    return [sys.executable, "-P", "-m", MODULE, plan.to_json()]


def exec_supervisor(plan: SupervisedReversal, progress: Progress = silent,
                    log: Log | None = None) -> ReverseResult:
    """Hand the worker its job, then replace this process (the CLI) with the supervisor, which
    follows the worker, prints the result and exits as the CLI would.

    The job goes first so the worker reverses while the supervisor's interpreter starts
    (~0.05 s of a sub-second clip's time). From then until the supervisor's handlers can kill
    the worker and remove the folders, SIGTERM, SIGHUP and SIGINT wait, blocked: the signal
    mask survives ``execve``, and the supervisor unblocks them inside that clean-up
    (:func:`_reverse`). Returns, without exec, the result of a launch that failed, or of the
    reversal supervised here if exec itself failed.
    """
    assert plan.confine == Confine(), "a confined reversal starts its worker after confining"
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, DEFERRED_SIGNALS)
    try:
        launched = launch(plan, progress)
    except BaseException as error:
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        if isinstance(error, Failed):
            return _failure(plan, error, log)
        raise
    os.set_inheritable(launched.stdout_fd, True)
    plan = plan._replace(kept=None, launched=launched)
    sys.stdout.flush()
    sys.stderr.flush()
    argv = command(plan)
    with contextlib.suppress(OSError):
        os.execv(argv[0], argv)
    return supervise(plan, progress, log)  # unblocks the signals in its clean-up


def confine(limits: Confine) -> None:
    """Put this process, and so the worker it starts next, under the job's memory limit."""
    if limits.cgroup_procs:
        with open(limits.cgroup_procs, "w") as procs:
            procs.write(str(os.getpid()))
    if limits.rlimit_as_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (limits.rlimit_as_bytes, limits.rlimit_as_bytes))


def _stop(signum: int, _frame: object) -> NoReturn:
    # SIGTERM/SIGHUP unwind through the finally blocks: the worker's group is killed, the temp
    # dir and the partial file removed.
    raise SystemExit(128 + signum)


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        sys.stderr.write(f"usage: python -P -m {MODULE} JOB_JSON\n")
        return 2
    plan = SupervisedReversal.from_json(argv[0])
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _stop)
    try:
        confine(plan.confine)
    except OSError as error:
        refused = ReverseResult(False, None, plan.input, time.monotonic() - plan.started,
                                f"Could not put the reversal under its memory limit: {error}")
        return report(refused, plan.as_json)
    try:
        outcome = supervise(plan, silent if plan.as_json else stderr_progress,
                            JsonLog() if plan.log_record else None)
    except KeyboardInterrupt:
        sys.stderr.write("interrupted.\n")
        return 130
    return report(outcome, plan.as_json)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
