"""What the CLI hands the supervisor, the supervisor the worker, and the worker back (plain JSON).

Standard library only: the supervisor (``media/supervisor.py``) and the worker import this
without the vmkeeper package's dependencies; their memory counts in the reversal's process
tree, and the tree must stay within 1.1x of a forward transcode. So the types are NamedTuples,
not dataclasses: ``dataclasses`` imports ``inspect`` (and ``ast``, ``dis``, ``tokenize``),
~1.6 MiB of RSS in each of the two processes (docs/media.md).
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

# DST suffix -> FFmpeg muxer. MP4 is the default the issue asks for; MOV and Matroska carry PCM,
# which the frame- and sample-exact tests need.
CONTAINERS: dict[str, str] = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}


def plain(value: Any) -> Any:
    """``value`` with every NamedTuple in it (nested, in lists and dicts) as a JSON object,
    as ``dataclasses.asdict`` did: ``json.dumps`` alone would write a tuple as an array."""
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


def request_line(message: dict[str, Any]) -> bytes:
    """One request to a ``worker serve`` (``media/worker.py``) as the line it reads on stdin."""
    return (json.dumps(message) + "\n").encode()


class EncoderSpec(NamedTuple):
    video_codec: str = "libx264"
    preset: str = "veryfast"
    crf: int = 23
    audio_codec: str = "aac"
    audio_bitrate: str = "128k"


class ReverseJob(NamedTuple):
    source: str
    output: str  # the temporary name beside DST; the parent renames it when verified
    container: str  # FFmpeg muxer name
    temp_dir: str  # private; the parent removes it whatever happens
    frame_budget_bytes: int  # page cache a piece's spool may hold; sizes merged pieces
    encoder: EncoderSpec = EncoderSpec()
    rotation: int | None = None  # the probe's (degrees clockwise); None: decode a frame for it

    def to_json(self) -> str:
        return json.dumps(plain(self))

    @classmethod
    def from_json(cls, text: str) -> ReverseJob:
        data = json.loads(text)
        data["encoder"] = EncoderSpec(**data.get("encoder", {}))
        return cls(**data)


class ReverseStats(NamedTuple):
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
        names = set(cls._fields)
        return cls(**{key: value for key, value in data.items() if key in names})


class ReverseResult(NamedTuple):
    """A reversal's result: what ``media reverse --json`` prints and the job service records.

    The one result type, built by the supervisor (in the CLI's process, the job service's
    child or in-process) and by the checks before it; ``input`` is the probed metadata as JSON.
    """

    ok: bool
    output: str | None
    input: dict[str, Any] | None
    seconds: float
    error: str | None
    rejected: bool = False  # the input was refused by a check, nothing was started
    stats: ReverseStats | None = None
    output_size_bytes: int | None = None
    peak_memory_bytes: int | None = None  # supervisor + worker, sampled, and the worker's own

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(plain(self), indent=indent, ensure_ascii=False,
                          default=str)

    @classmethod
    def from_json(cls, text: str) -> ReverseResult:
        data = json.loads(text)
        names = set(cls._fields)
        data = {key: value for key, value in data.items() if key in names}
        stats = data.get("stats")
        data["stats"] = ReverseStats.from_dict(stats) if isinstance(stats, dict) else None
        return cls(**data)


class Confine(NamedTuple):
    """The memory limit the supervisor puts itself under before it starts the worker.

    The job service starts the supervisor and the supervisor confines itself (joins the cgroup,
    sets RLIMIT_AS): nothing runs between fork and exec in the service, whose threads could hold
    a lock the child would then wait on forever (``preexec_fn``'s hazard). The worker, started
    after, inherits the limit: the limit holds the whole worker tree.
    """

    cgroup_procs: str | None = None  # the job's cgroup.procs file
    rlimit_as_bytes: int | None = None


class KeptWorker(NamedTuple):
    """A worker already running for this reversal (``media/warm.py``: it probed the source):
    its pid and the inheritable ends of its stdin and stdout, which the supervisor then owns."""

    pid: int
    stdin_fd: int
    stdout_fd: int


class Launched(NamedTuple):
    """A worker already handed this reversal's job, and what was made for it: the CLI does this
    before its exec, so the worker reverses while the supervisor's interpreter starts. The
    supervisor then owns all of it: the worker (its pid, the inheritable end of its stdout),
    the private temp folder, the private folder beside DST with the partial output in it, and
    the worker's log."""

    pid: int
    stdout_fd: int
    temp_dir: str
    private: str
    partial: str
    log_path: str


class SupervisedReversal(NamedTuple):
    """Everything the supervisor needs once the checks passed: the CLI hands it over at exec.

    ``started`` and ``deadline`` are :func:`time.monotonic` instants; CLOCK_MONOTONIC is
    system-wide on Linux, so they keep their meaning across ``os.execv`` and in a child: the
    one deadline of a reversal, whoever supervises it. ``record`` holds the log record's input
    fields (source, destination, input size, probed metadata) and ``input`` the probed metadata
    as the result's JSON prints it.
    """

    source: str  # resolved, as the worker opens it
    destination: str
    container: str
    frame_budget_bytes: int
    encoder: EncoderSpec
    started: float
    deadline: float
    timeout_ms: int  # media.reverse_timeout_ms, for the message when the deadline passes
    record: dict[str, Any]
    input: dict[str, Any] | None
    as_json: bool = False
    log_record: bool = False  # write the JSON log record on stderr (--json, LOG_FORMAT=json)
    confine: Confine = Confine()
    kept: KeptWorker | None = None  # the CLI's warm worker; None: the supervisor starts one
    launched: Launched | None = None  # the job already handed to a worker (by the CLI)

    def worker_job(self, temp_dir: str, output: str) -> ReverseJob:
        video = (self.input or {}).get("video") or {}
        rotation = video.get("rotation")
        return ReverseJob(source=self.source, output=output, container=self.container,
                          temp_dir=temp_dir, frame_budget_bytes=self.frame_budget_bytes,
                          encoder=self.encoder,
                          rotation=rotation if isinstance(rotation, int) else None)

    def to_json(self) -> str:
        return json.dumps(plain(self))

    @classmethod
    def from_json(cls, text: str) -> SupervisedReversal:
        data = json.loads(text)
        data["encoder"] = EncoderSpec(**data["encoder"])
        data["confine"] = Confine(**data.get("confine") or {})
        data["kept"] = KeptWorker(**data["kept"]) if data.get("kept") else None
        data["launched"] = Launched(**data["launched"]) if data.get("launched") else None
        return cls(**data)
