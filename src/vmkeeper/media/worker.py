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
``{"type": "probe", "path": P}`` (the probe's line, as ``probe P`` prints it; it keeps serving),
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
from typing import Any

_PROGRESS_INTERVAL_S = 0.5


def _say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def _probe(path: str) -> int:
    from vmkeeper.media.avprobe import ProbeFailed, probe_file

    try:
        data = probe_file(path)
    except ProbeFailed as error:
        _say({"type": "error", "message": str(error)})
        return 1
    sys.stdout.write(json.dumps(data) + "\n")
    return 0


def _reverse(job_json: str) -> int:
    import av

    from vmkeeper.media.job import ReverseJob
    from vmkeeper.media.reverse import ReversalFailed, reverse_file

    job = ReverseJob.from_json(job_json)
    last = 0.0

    def progress(done: int, total: int) -> None:
        nonlocal last
        now = time.monotonic()
        if now - last >= _PROGRESS_INTERVAL_S or done == total:
            last = now
            _say({"type": "progress", "done": done, "total": total})

    try:
        stats = reverse_file(job, progress)
    except ReversalFailed as error:
        _say({"type": "error", "message": str(error)})
        return 1
    except av.error.FFmpegError as error:
        _say({"type": "error", "message": f"FFmpeg failed: {error}"})
        return 1
    _say({"type": "result", **stats._asdict()})
    return 0


def _traced_reverse(job_json: str) -> int:
    """The reversal as a span in the trace of the job that started it (when it was traced)."""
    from vmkeeper import telemetry

    if telemetry.join_parent("vmkeeper-media-worker") is None:
        return _reverse(job_json)
    try:
        with telemetry.span("media reverse") as span:
            code = _reverse(job_json)
            span.set_attribute("process.exit.code", code)
            return code
    finally:
        telemetry.shutdown()


def _serve() -> int:
    # Loaded now, while the CLI that started this loads its own modules and settings: PyAV
    # (~0.1-0.2 s) and what the reversal runs (~0.02-0.04 s). The program's entry starts this
    # worker first (media/warm.py), so it then waits for the CLI's probe request.
    import av  # noqa: F401

    import vmkeeper.media.reverse  # noqa: F401

    while line := sys.stdin.readline():
        try:
            request = json.loads(line)
        except json.JSONDecodeError:
            _say({"type": "error", "message": "unreadable request"})
            return 2
        if request.get("type") == "probe":
            _probe(str(request["path"]))
            sys.stdout.flush()
        elif request.get("type") == "reverse":
            log = os.open(str(request["log"]), os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
            os.dup2(log, 2)
            os.close(log)
            os.environ.update({str(k): str(v) for k, v in (request.get("env") or {}).items()})
            return _traced_reverse(str(request["job"]))  # the job's JSON, as `reverse` takes it
    return 0


def main(argv: Sequence[str]) -> int:
    if len(argv) == 2 and argv[0] == "probe":
        return _probe(argv[1])
    if len(argv) == 2 and argv[0] == "reverse":
        return _traced_reverse(argv[1])
    if argv and argv[0] == "serve":  # serve [SRC DST]: they only name the job in `ps`
        return _serve()
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
