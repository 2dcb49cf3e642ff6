"""`vmkeeper media probe FILE` and `vmkeeper media reverse SRC DST`."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from vmkeeper.cli import media_jobs
from vmkeeper.cli.common import JsonOption, emit, progress_printer, state

if TYPE_CHECKING:
    from rich.console import Console

    from vmkeeper.media.warm import WarmWorker
    from vmkeeper.progress import ProgressEvent

app = typer.Typer(help="Probe and reverse videos inside the runbook's limits.",
                  no_args_is_help=True)


@app.command("probe")
def probe_cmd(ctx: typer.Context, file: Path, as_json: bool = JsonOption) -> None:
    """Print a video's container, duration, size, video and audio streams."""
    from vmkeeper.media.probe import probe_media

    info = probe_media(state(ctx).settings.media, file)

    def human(console: Console) -> None:
        video = info.video
        console.print(f"{info.path}: {info.format}, {info.duration_s or 0:.3f} s, "
                      f"{info.size_bytes} bytes, {info.bit_rate or 0} b/s, "
                      f"start {info.start_time_s:g} s")
        if video:
            console.print(f"  video: {video.codec} {video.width}x{video.height} "
                          f"{video.pixel_format}, {video.fps or 0:g} fps (nominal "
                          f"{video.nominal_fps or 0:g}), {video.frame_count or '?'} frames, "
                          f"rotation {video.rotation}")
        audio = info.audio
        console.print(f"  audio: {audio.codec} {audio.sample_rate} Hz, {audio.channels} ch"
                      if audio else "  audio: none")

    emit(info, as_json, human)


def _owns_process() -> bool:
    """True when this process is the `vmkeeper` program, not main() called by a host (tests)."""
    from vmkeeper.cli import entry as cli_entry
    from vmkeeper.cli import main as cli_main

    entry = sys.modules.get("__main__")
    spec = getattr(entry, "__spec__", None)
    return getattr(entry, "run", None) in (cli_entry.run, cli_main.run) and (
        spec is None or spec.name == "vmkeeper.__main__")


@app.command("reverse")
def reverse_cmd(ctx: typer.Context, src: Path, dst: Path, as_json: bool = JsonOption) -> None:
    """Write DST playing SRC backwards, sound included, in bounded memory."""
    # Settings, checks and probe need the CLI's libraries; waiting for the worker does not.
    # Once the job is known and handed to the worker, this process becomes the stdlib-only
    # supervisor (os.execv: same PID, same stdout/stderr), which prints the result and exits as
    # this command would: the process waiting during the reversal is ~12 MiB RSS instead of
    # the CLI's ~49 MiB.
    started = time.monotonic()
    # The worker started first (media/warm.py: the program's entry started it for this SRC and
    # DST before the CLI's imports, else it starts here, before the settings and the checks),
    # so PyAV loads meanwhile; it answers the probe once the file checks passed (a small SRC it
    # probed ahead) and reverses it for the supervisor. Stopped on any way out of the block
    # below that is not the exec.
    from vmkeeper.media.warm import warm_worker

    with warm_worker(src, dst) as warm:
        _reverse(ctx, src, dst, as_json, started, warm)


def _reverse(ctx: typer.Context, src: Path, dst: Path, as_json: bool, started: float,
             warm: WarmWorker | None) -> None:
    from vmkeeper import logs
    from vmkeeper.media import service, supervisor

    printer = progress_printer(as_json)

    def progress(event: ProgressEvent) -> None:
        printer(event.message)

    # The JSON log record is for machines: with --json (beside the object on stdout) or when
    # VMKEEPER_LOG_FORMAT=json asks for records; a person reading the output gets lines.
    record = as_json or logs.json_format()
    log = supervisor.JsonLog() if record else None
    prepared = service.prepare(state(ctx).settings.media, src, dst, progress, log=log,
                               started=started, warm=warm)
    if isinstance(prepared, service.ReverseResult):
        outcome = prepared
    else:
        plan = prepared._replace(as_json=as_json, log_record=record)
        if _owns_process():  # returns only if the launch failed, or exec did (then supervised)
            outcome = supervisor.exec_supervisor(plan, progress, log)
        else:
            outcome = supervisor.supervise(plan, progress, log)
    if supervisor.report(outcome, as_json) != 0:
        raise typer.Exit(1)


media_jobs.register(app)
