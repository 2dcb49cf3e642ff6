"""The media worker process: ``python -m vmkeeper.media.worker probe FILE | reverse JOB_JSON``.

FFmpeg's libraries run in-process through PyAV and cannot be interrupted from Python, so they
run here, in a child the parent can kill whole on FFPROBE_TIMEOUT_MS / FFMPEG_REVERSE_TIMEOUT_MS
(and that a job service can start under a memory limit). It speaks JSON lines on stdout:
``{"type": "progress", ...}``, then one ``{"type": "result", ...}`` or ``{"type": "error", ...}``.

The supervisor runs it as ``python -P -m vmkeeper.media.worker``, the probe as a script
(``adapters/ffmpeg.py``); either way it imports only PyAV and the modules it runs (importing the
``vmkeeper`` package runs nothing: the worker's memory counts in the reversal's tree).

``serve`` is the worker `media reverse` starts before it needs it (``media/warm.py``): it loads
PyAV while the CLI loads its settings, then answers requests on stdin, one JSON line each —
``{"type": "probe", "path": P}`` (the probe's line, as ``probe P`` prints it; it keeps serving;
``serve SRC DST`` probes a small SRC before it is asked, :func:`_probe_ahead`),
then ``{"type": "reverse", "job": JOB_JSON, "log": FILE, "env": {...}}`` (its stderr goes to
FILE, the environment gains ``env``, and it reverses as ``reverse JOB_JSON`` does, then exits);
at EOF it exits.
One interpreter and one PyAV load for the probe and the reversal, instead of one each.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

from vmkeeper.fileid import Identity, file_identity

if TYPE_CHECKING:
    from vmkeeper.media.reverse import Opened

_PROGRESS_INTERVAL_S = 0.5


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _probed(path: str) -> tuple[dict[str, Any], int]:
    """The probe's message for ``path`` (its streams, or an error) and the exit code that goes
    with it."""
    from vmkeeper.media.avprobe import ProbeFailed, probe_file

    try:
        return probe_file(path), 0
    except ProbeFailed as error:
        return {"type": "error", "message": str(error)}, 1


def _probe(path: str) -> int:
    message, code = _probed(path)
    sys.stdout.write(json.dumps(message) + "\n")
    return code


# Files up to this size are probed by `serve SRC DST` before the CLI asks: the ones whose
# reversal is short enough for the probe's ~0.05-0.08 s to count (issue 18), and a bound on
# what a file not yet checked against the size limit (settings.media.max_size_bytes, 1 GiB by
# default; the CLI checks it before it asks) can make FFmpeg read.
_AHEAD_MAX_BYTES = 64 * 1024 * 1024


class Ahead(NamedTuple):
    """What ``serve SRC DST`` did with SRC before it was asked: its probe line, and (a video it
    can read) SRC opened for the reversal; ``identity`` is the file both are of."""

    identity: Identity
    line: str
    media: bool  # it probed as media (an error line otherwise)
    opened: Opened | None = None


def _probe_ahead(path: str) -> Ahead | None:
    """``path``'s probe line now, with the identity of the file it describes; None for what
    is not a small non-empty regular file, or changed while it was probed.

    The probe is what the CLI asks for first, and the CLI is still loading its settings when
    this worker has PyAV: the answer waits for the question. It says how long the probe took
    (``probe_s``): FFPROBE_TIMEOUT_MS bounds the probe, not the wait for an answer made before
    the question (``warm.WarmWorker.probe``). A FIFO or device is never opened here (nothing
    would end the read but the CLI's kill), and a file that changed in between is probed again
    when asked (:func:`_answer`)."""
    identity = file_identity(path)
    if identity is None or not 0 < identity[2] <= _AHEAD_MAX_BYTES:
        return None
    started = time.monotonic()
    message, code = _probed(path)
    message["probe_s"] = round(time.monotonic() - started, 6)
    return Ahead(identity, json.dumps(message), code == 0) if file_identity(path) == identity \
        else None


def _open_ahead(path: str, ahead: Ahead | None) -> Ahead | None:
    """``ahead`` with ``path`` opened for its reversal (~27 ms of opens at 1080p, while the CLI
    still prepares the job) when it probed as media; :func:`_reverse` uses them if the job is of
    this very file, unchanged."""
    if ahead is None or not ahead.media:
        return ahead
    import av

    from vmkeeper.media.reverse import ReversalFailed, open_source

    try:
        return ahead._replace(opened=open_source(path))
    except (ReversalFailed, av.error.FFmpegError):  # the reversal opens it again, and says why
        return ahead


def _answer(path: str, ahead: Ahead | None) -> None:
    """The probe of ``path``: the one made ahead if it is of this very file, unchanged."""
    if ahead is not None and file_identity(path) == ahead.identity:
        sys.stdout.write(ahead.line + "\n")
    else:
        _probe(path)
    sys.stdout.flush()


def _reverse(job_json: str, ahead: Ahead | None = None) -> int:
    import av

    from vmkeeper.media.job import ReverseJob
    from vmkeeper.media.reverse import ReversalFailed, reverse_file

    job = ReverseJob.from_json(job_json)
    opened = None
    if ahead is not None and ahead.opened is not None:
        opened = ahead.opened
        if file_identity(job.source) != ahead.identity:  # another file, or this one changed since
            opened.close()
            opened = None
    last = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= _PROGRESS_INTERVAL_S or done == total:
            last = now
            _say({"type": "progress", "done": done, "total": total})

    try:
        stats = reverse_file(job, progress, opened)
    except ReversalFailed as error:
        _say({"type": "error", "message": str(error)})
        return 1
    except av.error.FFmpegError as error:
        _say({"type": "error", "message": f"FFmpeg failed: {error}"})
        return 1
    _say({"type": "result", **stats._asdict()})
    return 0


def _traced_reverse(job_json: str, ahead: Ahead | None = None) -> int:
    """The reversal as a span in the trace of the job that started it (when it was traced)."""
    from vmkeeper import telemetry

    if telemetry.join_parent("vmkeeper-media-worker") is None:
        return _reverse(job_json, ahead)
    try:
        with telemetry.span("media reverse") as span:
            code = _reverse(job_json, ahead)
            span.set_attribute("process.exit.code", code)
            return code
    finally:
        telemetry.shutdown()


def _serve(names: Sequence[str]) -> int:
    # Done now, while the CLI that started this loads its own modules and settings: PyAV
    # (~0.1-0.2 s), the probe of SRC (the CLI's first question), what the reversal runs
    # (~0.02-0.04 s). The program's entry starts this worker first (media/warm.py).
    import av  # noqa: F401

    ahead = _probe_ahead(names[0]) if names else None

    import vmkeeper.media.reverse  # noqa: F401

    ahead = _open_ahead(names[0], ahead)
    while line := sys.stdin.readline():
        try:
            request = json.loads(line)
        except json.JSONDecodeError:
            _say({"type": "error", "message": "unreadable request"})
            return 2
        if request.get("type") == "probe":
            _answer(str(request["path"]), ahead)
        elif request.get("type") == "reverse":
            log = os.open(str(request["log"]), os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
            os.dup2(log, 2)
            os.close(log)
            os.environ.update({str(k): str(v) for k, v in (request.get("env") or {}).items()})
            # The job's JSON, as `reverse` takes it.
            return _traced_reverse(str(request["job"]), ahead)
    return 0


def main(argv: Sequence[str]) -> int:
    if len(argv) == 2 and argv[0] == "probe":
        return _probe(argv[1])
    if len(argv) == 2 and argv[0] == "reverse":
        return _traced_reverse(argv[1])
    if argv and argv[0] == "serve":  # serve [SRC DST]: SRC is probed ahead; both name it in ps
        return _serve(argv[1:2])
    sys.stderr.write("usage: python -m vmkeeper.media.worker probe FILE | reverse JOB_JSON "
                     "| serve [SRC DST]\n")
    return 2


def _die_with_parent() -> None:
    """Ask the kernel to SIGKILL this worker when the process that started it dies.

    A supervisor killed by SIGKILL (an operator's `kill -9`, the OOM killer) cannot kill its
    worker's group; without this the reversal would run on, unsupervised, past every timeout.
    """
    parent = os.getppid()
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the supervisor's group kill still applies
        return
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


if __name__ == "__main__":
    _die_with_parent()
    code = main(sys.argv[1:])
    sys.stdout.flush()
    sys.stderr.flush()
    # Past this point there is nothing left to write: skip the interpreter's teardown (PyAV's
    # and FFmpeg's objects freed one by one, ~15 ms a job, measured), which the supervisor and
    # the job queue would otherwise wait for.
    os._exit(code)
