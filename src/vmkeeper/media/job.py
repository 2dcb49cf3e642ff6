"""What the CLI hands the supervisor, the supervisor the worker, and the worker back (plain JSON).

Standard library only: the supervisor (``media/supervisor.py``) and the worker import this as
scripts, without the vmkeeper package's dependencies; their memory counts in the reversal's
process tree, and the tree must stay within 1.25x of a forward transcode.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

# DST suffix -> FFmpeg muxer. MP4 is the default the issue asks for; MOV and Matroska carry PCM,
# which the frame- and sample-exact tests need.
CONTAINERS: dict[str, str] = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


@dataclass(frozen=True)
class EncoderSpec:
    video_codec: str = "libx264"
    preset: str = "veryfast"
    crf: int = 23
    audio_codec: str = "aac"
    audio_bitrate: str = "128k"


@dataclass(frozen=True)
class ReverseJob:
    source: str
    output: str  # the temporary name beside DST; the parent renames it when verified
    container: str  # FFmpeg muxer name
    temp_dir: str  # private; the parent removes it whatever happens
    frame_budget_bytes: int  # page cache a piece's spool may hold; sizes merged pieces
    encoder: EncoderSpec = EncoderSpec()

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ReverseJob:
        data = json.loads(text)
        data["encoder"] = EncoderSpec(**data.get("encoder", {}))
        return cls(**data)


@dataclass(frozen=True)
class ReverseStats:
    frames: int
    pieces: int
    frames_per_piece: int
    frames_decoded: int  # = frames: pieces are whole GOPs; more only past open-GOP ends
    video_duration_s: float
    audio_samples: int
    output_frames: int
    output_video_duration_s: float
    output_audio_samples: int
    worker_peak_rss_bytes: int

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReverseStats:
        names = {field.name for field in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in names})


@dataclass(frozen=True)
class SupervisedReversal:
    """Everything the supervisor needs once the checks passed: the CLI hands it over at exec.

    ``started`` and ``deadline`` are :func:`time.monotonic` instants; CLOCK_MONOTONIC is
    system-wide on Linux, so they keep their meaning across ``os.execv``. ``record`` holds the
    log record's input fields (source, destination, input size, probed metadata) and ``input``
    the probed metadata as the result's JSON prints it.
    """

    source: str  # resolved, as the worker opens it
    destination: str
    partial: str  # the temporary name beside DST
    container: str
    frame_budget_bytes: int
    encoder: EncoderSpec
    started: float
    deadline: float
    timeout_ms: int  # media.reverse_timeout_ms, for the message when the deadline passes
    record: dict[str, Any]
    input: dict[str, Any] | None
    as_json: bool = False

    def worker_job(self, temp_dir: str) -> ReverseJob:
        return ReverseJob(source=self.source, output=self.partial, container=self.container,
                          temp_dir=temp_dir, frame_budget_bytes=self.frame_budget_bytes,
                          encoder=self.encoder)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SupervisedReversal:
        data = json.loads(text)
        data["encoder"] = EncoderSpec(**data["encoder"])
        return cls(**data)
