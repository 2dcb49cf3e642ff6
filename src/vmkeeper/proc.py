"""The one process helper: every external program vmkeeper starts goes through here.

argv lists only (never a shell string), a required timeout, the child in its own process group
so a timeout kills the whole tree (``next start`` forks ``next-server``; ``npm`` forks ``sh``),
captured output, and a frozen result. One other module imports :mod:`subprocess`, with its
reason: ``media/supervisor.py``, which must not import vmkeeper's dependencies (psutil) while it
waits on a reversal, and keeps these same rules.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from vmkeeper import logs, telemetry
from vmkeeper.errors import CommandFailed, CommandNotFound, CommandTimeout

log = logs.get_logger("vmkeeper.proc")

Argv = Sequence[str | Path]

_TAIL_LINES = 20
_SECRET_WORD = re.compile(r"pass|secret|token|key|auth|cred|cookie|salt|session", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)[^@\s/]+@")


def mask_arg(arg: str) -> str:
    """Mask ``NAME=value`` with a secret-ish NAME and passwords in URLs before anything logs."""
    name, eq, _value = arg.partition("=")
    if eq and _SECRET_WORD.search(name) and not name.startswith("-"):
        return f"{name}=***"
    return _URL_PASSWORD.sub(r"\1***@", arg)


def display(argv: Argv) -> str:
    return " ".join(mask_arg(str(a)) for a in argv)


def tail(text: str, lines: int = _TAIL_LINES) -> str:
    kept = text.strip().splitlines()[-lines:]
    return "\n".join(kept)


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def ok(self) -> bool:
        return self.returncode == 0

    @property
    def output_tail(self) -> str:
        return tail("\n".join(part for part in (self.stdout, self.stderr) if part.strip()))


class Runner(Protocol):
    """What adapters call to run a program: :func:`run` itself, or a test's scripted stand-in
    (the fake PM2). One protocol, so mypy checks every adapter's calls against ``run``."""

    def __call__(
        self,
        argv: Argv,
        *,
        timeout: float,
        cwd: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
    ) -> Result: ...


def _failure_message(argv: Argv, what: str, stdout: str, stderr: str) -> str:
    output = tail("\n".join(part for part in (stdout, stderr) if part and part.strip()))
    message = f"`{display(argv)}` {what}."
    if output:
        message += f" Last output:\n{output}"
    return message


def kill_group(pid: int, sig: int = signal.SIGKILL) -> None:
    """Kill the process group led by ``pid`` (its whole tree, unless a child left the group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def _environment(env: Mapping[str, str] | None, replace_env: bool) -> dict[str, str]:
    if replace_env:
        return dict(env or {})
    merged = dict(os.environ)
    merged.update(env or {})
    return merged


def run(
    argv: Argv,
    *,
    timeout: float,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    replace_env: bool = False,
    check: bool = True,
    input: str | None = None,
    nice: int | None = None,
    on_line: Callable[[str], None] | None = None,
) -> Result:
    """Run ``argv`` to completion within ``timeout`` seconds and return its frozen result.

    ``on_line``: each line the command prints (stderr merged into stdout, in the order
    printed) is passed to it as it comes, without its newline — a deploy's npm and build
    output, live; the result's ``stdout`` then holds both streams and ``stderr`` is empty.

    ``env`` is added on top of this process's environment unless ``replace_env``. ``nice``
    lowers the child's CPU priority (and IO priority, best effort) for builds on a busy VM.
    Raises CommandNotFound if the program does not exist, CommandTimeout after killing the
    whole process group when the timeout expires, and CommandFailed on a non-zero exit if
    ``check``. Each run is a telemetry span (a no-op unless telemetry was set up), and the
    child gets ``TRACEPARENT`` pointing at it.
    """
    args = [str(a) for a in argv]
    with telemetry.command_span(args) as note:
        if note is not None:  # the child joins the trace as a child of this command's span
            env = {**(env or {}), **telemetry.child_env()}
        result = _run(args, timeout=timeout, cwd=cwd, env=env, replace_env=replace_env,
                      input=input, nice=nice, on_line=on_line)
        if note is not None:
            note.finished(result.returncode, result.seconds)
    if check and result.returncode != 0:
        raise CommandFailed(
            _failure_message(args, f"exited with code {result.returncode}", result.stdout,
                             result.stderr)
        )
    return result


def _run(
    args: list[str],
    *,
    timeout: float,
    cwd: str | Path | None,
    env: Mapping[str, str] | None,
    replace_env: bool,
    input: str | None,
    nice: int | None,
    on_line: Callable[[str], None] | None = None,
) -> Result:
    if timeout <= 0:
        raise ValueError("timeout must be positive")
    if on_line is not None and input is not None:
        raise ValueError("on_line streams the output of a command that reads no input")
    started = time.monotonic()
    if nice:
        # Here, not at the top: psutil is ~20 ms of every command's start (the CLI's budget is
        # 150 ms), and most commands never lower a child's priority. Never in the child: an
        # import between fork and exec can wait forever for a lock another thread held.
        import psutil

    def lower_priority() -> None:
        # `nice -n N ionice -c2 -n7` for the child, without depending on either program.
        os.nice(nice or 0)
        with contextlib.suppress(Exception):
            psutil.Process().ionice(psutil.IOPRIO_CLASS_BE, 7)

    log.debug("run", argv=display(args), cwd=str(cwd) if cwd else None, timeout=timeout)
    try:
        child = subprocess.Popen(
            args,
            cwd=cwd,
            env=_environment(env, replace_env),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if on_line is None else subprocess.STDOUT,
            text=True,
            errors="replace",
            start_new_session=True,
            preexec_fn=lower_priority if nice else None,
        )
    except FileNotFoundError as error:
        missing = args[0] if error.filename in (None, args[0]) else str(error.filename)
        raise CommandNotFound(
            f"`{missing}` was not found: install it or set its path in the settings."
        ) from None
    except NotADirectoryError:
        raise CommandNotFound(f"working directory {cwd} does not exist.") from None
    except PermissionError:
        raise CommandNotFound(f"`{args[0]}` is not executable.") from None
    if on_line is not None:
        return _stream_lines(child, args, timeout, started, on_line)
    try:
        stdout, stderr = child.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(child.pid)
        stdout, stderr = child.communicate()
        raise CommandTimeout(
            _failure_message(args, f"timed out after {timeout:g} s and was killed", stdout, stderr)
        ) from None
    except BaseException:
        kill_group(child.pid)
        child.wait()
        raise
    return Result(tuple(args), child.returncode, stdout, stderr, time.monotonic() - started)


_LINE_LIMIT = 64 * 1024  # a progress bar redrawn with \r and no newline is cut, not hoarded


def _stream_lines(child: subprocess.Popen[str], args: list[str], timeout: float,
                  started: float, on_line: Callable[[str], None]) -> Result:
    """Read the child's merged output line by line until it ends or the deadline passes."""
    # A blocking read cannot see the deadline; a timer kills the group, ending the stream.
    timer = threading.Timer(timeout, kill_group, (child.pid,))
    timer.daemon = True
    timer.start()
    lines: list[str] = []
    try:
        assert child.stdout is not None
        while line := child.stdout.readline(_LINE_LIMIT):
            lines.append(line)
            on_line(line.rstrip("\r\n"))
        code = child.wait()
    except BaseException:
        kill_group(child.pid)
        child.wait()
        raise
    finally:
        timer.cancel()
    stdout = "".join(lines)
    if time.monotonic() - started >= timeout and code < 0:
        raise CommandTimeout(_failure_message(
            args, f"timed out after {timeout:g} s and was killed", stdout, ""))
    return Result(tuple(args), code, stdout, "", time.monotonic() - started)


class Running:
    """A started child in its own process group; leaving the ``with`` kills the group."""

    def __init__(self, popen: subprocess.Popen[Any], argv: list[str], deadline: float) -> None:
        self.popen = popen
        self.argv = argv
        self.deadline = deadline

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def stdin(self) -> IO[Any] | None:
        return self.popen.stdin

    @property
    def stdout(self) -> IO[Any] | None:
        return self.popen.stdout

    @property
    def stderr(self) -> IO[Any] | None:
        return self.popen.stderr

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def poll(self) -> int | None:
        return self.popen.poll()

    def wait(self) -> int:
        """Wait until the child exits or the deadline passes (then kill it: CommandTimeout)."""
        try:
            return self.popen.wait(timeout=max(self.remaining(), 0.001))
        except subprocess.TimeoutExpired:
            self.kill()
            raise CommandTimeout(f"`{display(self.argv)}` timed out and was killed.") from None

    def kill(self) -> None:
        kill_group(self.popen.pid)
        with contextlib.suppress(Exception):
            self.popen.wait(timeout=10)


@contextlib.contextmanager
def start(
    argv: Argv,
    *,
    timeout: float,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stdout: int | IO[Any] | None = subprocess.PIPE,
    stderr: int | IO[Any] | None = subprocess.PIPE,
) -> Iterator[Running]:
    """Start ``argv`` for streaming I/O; the group is killed when the block exits, however.

    Pass ``subprocess.PIPE`` (re-exported as ``proc.PIPE``) for a stream you read or write.
    """
    args = [str(a) for a in argv]
    log.debug("start", argv=display(args), cwd=str(cwd) if cwd else None, timeout=timeout)
    try:
        popen = subprocess.Popen(
            args,
            cwd=cwd,
            env=_environment(env, False),
            stdin=stdin,
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
        )
    except FileNotFoundError:
        raise CommandNotFound(
            f"`{args[0]}` was not found: install it or set its path in the settings."
        ) from None
    running = Running(popen, args, time.monotonic() + timeout)
    try:
        yield running
    finally:
        if popen.poll() is None:
            running.kill()
        for stream in (popen.stdin, popen.stdout, popen.stderr):
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.close()


def detach(
    argv: Argv,
    *,
    cwd: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    output: int | IO[Any] = subprocess.DEVNULL,
    input: bytes | None = None,
) -> int:
    """Start ``argv`` in its own session and leave it running past this process (a daemon of
    the sandbox, a one-shot command's telemetry exporter); its pid. ``input`` is written to its
    stdin, which is then closed; its stdout and stderr go to ``output``. What it does with its
    time is its own: the child must bound itself."""
    args = [str(a) for a in argv]
    log.debug("detach", argv=display(args), cwd=str(cwd) if cwd else None)
    try:
        child = subprocess.Popen(
            args, cwd=cwd, env=_environment(env, False),
            stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
            stdout=output, stderr=output, start_new_session=True)
    except FileNotFoundError:
        raise CommandNotFound(
            f"`{args[0]}` was not found: install it or set its path in the settings."
        ) from None
    if input is not None and child.stdin is not None:
        with contextlib.suppress(BrokenPipeError):  # a child that died at once: its own story
            child.stdin.write(input)
        child.stdin.close()
    return child.pid


PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT
