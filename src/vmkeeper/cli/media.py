"""`vmkeeper media probe FILE` and `vmkeeper media reverse SRC DST`."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from vmkeeper.cli.common import JsonOption, emit, progress_printer, state, stderr_console
from vmkeeper.media.probe import probe_media
from vmkeeper.media.service import reverse

app = typer.Typer(help="Probe and reverse videos inside the runbook's limits.",
                  no_args_is_help=True)


@app.command("probe")
def probe_cmd(ctx: typer.Context, file: Path, as_json: bool = JsonOption) -> None:
    """Print a video's container, duration, size, video and audio streams."""
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


@app.command("reverse")
def reverse_cmd(ctx: typer.Context, src: Path, dst: Path, as_json: bool = JsonOption) -> None:
    """Write DST playing SRC backwards, sound included, in bounded memory."""
    result = reverse(state(ctx).settings.media, src, dst, progress_printer(as_json))

    def human(console: Console) -> None:
        if result.ok and result.stats:
            console.print(f"{result.output}: {result.stats.frames} frames reversed in "
                          f"{result.seconds:.1f} s ({result.stats.pieces} pieces)")
        else:
            stderr_console().print(f"[red]error:[/red] {result.error}")

    emit(result, as_json, human)
    if not result.ok:
        raise typer.Exit(1)


from vmkeeper.cli import media_jobs

media_jobs.register(app)
