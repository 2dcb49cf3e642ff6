"""`media probe`: a file's metadata under FFPROBE_TIMEOUT_MS, or a clear reason it is not media."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vmkeeper.adapters import ffmpeg
from vmkeeper.adapters.ffmpeg import MediaInfo
from vmkeeper.errors import MediaRejected
from vmkeeper.media.limits import require_video
from vmkeeper.proc import Result
from vmkeeper.settings import MediaSettings


def probe_media(media: MediaSettings, path: Path, *, timeout_s: float | None = None,
                ask: Callable[[Path, float], Result] | None = None) -> MediaInfo:
    """Probe ``path``; MediaRejected if missing, empty, not media, truncated or without video.

    MediaError if the prober times out (it is killed) or cannot start. ``ask``: a prober
    already running (:func:`vmkeeper.adapters.ffmpeg.probe`).
    """
    if not path.is_file():
        raise MediaRejected(f"{path} does not exist or is not a regular file.")
    if path.stat().st_size == 0:
        raise MediaRejected(f"{path} is empty (0 bytes): it is not a video.")
    limit = media.ffprobe_timeout_ms / 1000
    info = ffmpeg.probe(path, ffprobe_path=media.ffprobe_path,
                        timeout_s=min(limit, timeout_s) if timeout_s else limit, ask=ask)
    require_video(info)
    return info
