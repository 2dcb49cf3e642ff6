"""Where kernel messages are read from, streamed line by line.

The runbook greps `journalctl -k`; a VM without journald has `dmesg` (which the kernel may refuse
to unprivileged users) and the syslog files. Each source is tried in turn; one that is missing or
not permitted is skipped with the reason, and the caller learns which source was read.
Nothing here holds more than one line of a log at a time.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from vmkeeper import proc
from vmkeeper.errors import CommandError, VmkeeperError

SYSLOG_FILES = (Path("/var/log/kern.log"), Path("/var/log/syslog"))

# What journalctl and dmesg print when the journal or ring buffer is there but closed to us;
# their exit code alone does not say (journalctl exits 0 with "-- No entries --").
_REFUSED = (
    "insufficient permissions",
    "not seeing messages",
    "permission denied",
    "operation not permitted",
    "no journal files",
    "failed to",
)


class KernelLogUnavailable(VmkeeperError):
    """No kernel log source could be read; the message lists each source and why."""


class KernelLogFileError(VmkeeperError):
    """A file the operator named cannot be read (bad usage, not a failure of the VM)."""

    exit_code = 2


@dataclass
class KernelLog:
    """An open source: its name, whether it describes this machine, the lines, what was skipped."""

    source: str
    local: bool
    chunks: Iterator[bytes]  # raw log bytes; lines may span chunks
    skipped: list[str] = field(default_factory=list)


def journalctl_argv(since: str | None, until: str | None) -> list[str]:
    argv = ["journalctl", "-k", "--no-pager", "-o", "short-iso"]
    if since:
        argv += ["--since", since]
    if until:
        argv += ["--until", until]
    return argv


def dmesg_argv() -> list[str]:
    # ISO times carry the date, so --since/--until can filter what dmesg prints.
    return ["dmesg", "--time-format", "iso"]


_CHUNK = 1 << 20


def _read_chunks(stream: IO[bytes]) -> Iterator[bytes]:
    while chunk := stream.read(_CHUNK):
        yield chunk


def _stream_chunks(stream: IO[Any]) -> Iterator[bytes]:
    """Bytes from a binary stream, or from a text one (a test's StringIO) re-encoded."""
    binary = getattr(stream, "buffer", None)
    if binary is not None:
        yield from _read_chunks(binary)
        return
    while chunk := stream.read(_CHUNK):
        yield chunk.encode("utf-8") if isinstance(chunk, str) else chunk


@contextlib.contextmanager
def _program(argv: Sequence[str], timeout: float) -> Iterator[tuple[Iterator[bytes] | None, str]]:
    """Start ``argv``; yield its stdout lines if it produced any, else None and why it failed."""
    with tempfile.TemporaryFile() as errors, proc.start(
        argv, timeout=timeout, stdout=proc.PIPE, stderr=errors
    ) as running:
        # A blocking read cannot see the deadline; a timer kills the group, ending the stream.
        timer = threading.Timer(timeout, running.kill)
        timer.daemon = True
        timer.start()
        try:
            stdout = running.stdout
            assert stdout is not None
            # journalctl frames its output with `-- No entries --`/`-- Logs begin …`: look past
            # them before deciding whether the source said anything at all.
            first = stdout.readline()
            while first.startswith(b"-- "):
                first = stdout.readline()
            if not first:
                code = running.wait()
                errors.seek(0)
                message = errors.read().decode("utf-8", errors="replace").strip()
                refused = any(word in message.lower() for word in _REFUSED)
                if code != 0 or refused:
                    yield None, _why(argv[0], code, message)
                    return
                yield iter(()), ""
                return

            def everything() -> Iterator[bytes]:
                yield first
                yield from _read_chunks(stdout)

            yield everything(), ""
        finally:
            timer.cancel()


def _why(program: str, code: int, message: str) -> str:
    last = message.splitlines()[-1] if message else f"exited with code {code}"
    return f"{program}: {last}"


def _open_file(path: Path) -> IO[bytes]:
    return path.open("rb")


@contextlib.contextmanager
def open_kernel_log(
    *,
    since: str | None = None,
    until: str | None = None,
    file: Path | None = None,
    stdin: IO[Any] | None = None,
    timeout_s: float = 300.0,
    syslog_files: Sequence[Path] = SYSLOG_FILES,
) -> Iterator[KernelLog]:
    """Open the first readable kernel log and yield it; the stream closes when the block ends.

    A given ``file`` (or ``stdin``) is read as is. Otherwise: journalctl, dmesg, then the syslog
    files. Raises KernelLogFileError if the named file cannot be read, KernelLogUnavailable if
    no source can.
    """
    if stdin is not None:
        yield KernelLog("stdin", local=False, chunks=_stream_chunks(stdin))
        return
    if file is not None:
        try:
            handle = _open_file(file)
        except IsADirectoryError:
            raise KernelLogFileError(f"{file} is a directory: give a kernel log file.") from None
        except FileNotFoundError:
            raise KernelLogFileError(f"{file} does not exist: give a kernel log file.") from None
        except PermissionError:
            raise KernelLogFileError(
                f"{file} is not readable by this user: run with sudo or copy it."
            ) from None
        with handle:
            yield KernelLog(f"file:{file}", local=False, chunks=_checked(handle, file))
        return

    skipped: list[str] = []
    for argv in (journalctl_argv(since, until), dmesg_argv()):
        try:
            with _program(argv, timeout_s) as (lines, why):
                if lines is not None:
                    yield KernelLog(" ".join(argv), local=True, chunks=lines, skipped=skipped)
                    return
                skipped.append(why)
        except CommandError as error:
            skipped.append(f"{argv[0]}: {error}")
    for path in syslog_files:
        try:
            handle = _open_file(path)
        except FileNotFoundError:
            skipped.append(f"{path}: does not exist")
            continue
        except OSError as error:
            skipped.append(f"{path}: {error.strerror or error}")
            continue
        with handle:
            yield KernelLog(str(path), local=True, chunks=_checked(handle, path), skipped=skipped)
        return
    raise KernelLogUnavailable(
        "no kernel log could be read (" + "; ".join(skipped) + "): run with sudo, or pass a "
        "saved log with --file."
    )


def _checked(handle: IO[bytes], path: Path) -> Iterator[bytes]:
    try:
        yield from _read_chunks(handle)
    except OSError as error:
        raise KernelLogFileError(f"{path} could not be read: {error.strerror or error}.") from None


def machine_ram_kb() -> int | None:
    """This machine's RAM, for a verdict about a log read from this machine."""
    import psutil

    try:
        return int(psutil.virtual_memory().total // 1024)
    except OSError:
        return None
