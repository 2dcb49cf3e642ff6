"""`vmkeeper bundle`: one redacted tar.gz holding the evidence of an incident.

Each source (health, PM2, logs, the kernel's OOM kills, the host) is collected concurrently
(vmkeeper.gather), each under its own deadline; one that fails or hangs is listed as skipped
with the reason and the bundle is written anyway, because at 3 a.m. a bundle without the
journal beats no bundle. Every file passes through the secret sweep and the redactor
(secret_sweep.py) before it touches the disk; the archive (archive.py) is written atomically,
mode 0600.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from vmkeeper.diagnose.archive import resolve_output, write_archive
from vmkeeper.diagnose.secret_sweep import known_secrets, redact_file
from vmkeeper.errors import VmkeeperError
from vmkeeper.gather import Gathering, Got
from vmkeeper.jsonable import json_text, to_jsonable
from vmkeeper.progress import Progress, ProgressEvent, silent
from vmkeeper.redact import DocumentKind, redact_text

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Piece:
    """One file of the bundle, before redaction: its path inside the bundle and its text."""

    name: str
    text: str
    kind: DocumentKind = DocumentKind.TEXT


@dataclass(frozen=True)
class Skipped:
    source: str
    reason: str


Gathered = Sequence[Piece | Skipped]


@dataclass(frozen=True)
class Source:
    """A named collector. It returns pieces (and partial skips) or raises to be skipped whole."""

    name: str
    collect: Callable[[], Gathered]


@dataclass(frozen=True)
class BundledFile:
    name: str
    source: str
    bytes: int
    redactions: int


@dataclass(frozen=True)
class BundleResult:
    path: Path
    files: list[BundledFile]
    skipped: list[Skipped]
    bytes: int
    seconds: float


def json_piece(name: str, value: Any) -> Piece:
    return Piece(name, json_text(value) + "\n",
                 DocumentKind.JSON)


def reason_of(error: BaseException) -> str:
    if isinstance(error, FileNotFoundError) and error.filename:
        return f"{error.filename} does not exist"
    if isinstance(error, PermissionError) and error.filename:
        return f"{error.filename} is not readable by this user"
    if isinstance(error, VmkeeperError):
        # proc's failures append the command's last output on further lines: keep the sentence.
        return str(error).splitlines()[0].rstrip(" .:") or type(error).__name__
    return f"{type(error).__name__}: {error}"


# ------------------------------------------------------------------------------ gathering

def gather(sources: Sequence[Source], *, timeout_s: float, workers: int = 3,
           progress: Progress = silent) -> tuple[list[tuple[str, Piece]], list[Skipped]]:
    """Run every source, at most ``workers`` at once, each within ``timeout_s`` of its start.

    Returns (source name, piece) pairs and the skips, both in the order of ``sources``.
    """
    gathering = Gathering(timeout_s=timeout_s, workers=workers, name="bundle",
                          describe=reason_of)
    runs = [(source.name, gathering.add(source.name, source.collect)) for source in sources]
    gathering.run(progress)
    pieces: list[tuple[str, Piece]] = []
    skipped: list[Skipped] = []
    for name, run in runs:
        for item in _outcome(name, run.got, timeout_s):
            if isinstance(item, Skipped):
                skipped.append(Skipped(item.source, redact_text(item.reason)))
            else:
                pieces.append((name, item))
    return pieces, skipped


def _outcome(name: str, got: Got[Gathered], timeout_s: float) -> Gathered:
    if got.timed_out:
        return [Skipped(name, f"timed out after {timeout_s:g} s")]
    if got.value is None:
        return [Skipped(name, got.error or "the source failed")]
    return got.value or [Skipped(name, "the source returned nothing")]


# ------------------------------------------------------------------------------ the service

@dataclass(frozen=True)
class BundleOptions:
    output: Path | None = None
    timeout_s: float = 30.0
    workers: int = 3
    now: datetime | None = None
    extra_manifest: Mapping[str, Any] = field(default_factory=dict)


def create_bundle(sources: Sequence[Source], options: BundleOptions = BundleOptions(),
                  progress: Progress = silent) -> BundleResult:
    """Collect ``sources``, redact every file, write the archive; skip what cannot be had.

    Raises BundleError (archive.py) only when the archive itself cannot be written.
    """
    started = time.monotonic()
    now = options.now or datetime.now(UTC)
    path = resolve_output(options.output, now)
    progress(ProgressEvent(f"collecting {len(sources)} sources, each within "
                           f"{options.timeout_s:g} s"))
    gathered, skipped = gather(sources, timeout_s=options.timeout_s, workers=options.workers,
                               progress=progress)
    secrets = known_secrets(piece.text for _source, piece in gathered
                            if piece.kind is DocumentKind.JSON)
    members: list[tuple[str, bytes]] = []
    files: list[BundledFile] = []
    taken: set[str] = {MANIFEST}
    for source, piece in gathered:
        name = _unique(piece.name, taken)
        text, count = redact_file(piece.text, piece.kind, secrets)
        data = text.encode("utf-8")
        members.append((name, data))
        files.append(BundledFile(name, source, len(data), count))
    manifest = {
        "created_at": now.astimezone(UTC).isoformat(),
        "host": socket.gethostname(),
        "redacted": "every file passed through vmkeeper's redactor; secrets read as "
                    "«redacted:<kind>»",
        "files": to_jsonable(files),
        "skipped": to_jsonable(skipped),
        **to_jsonable(dict(options.extra_manifest)),
    }
    manifest_piece = json_piece(MANIFEST, manifest)
    text, count = redact_file(manifest_piece.text, manifest_piece.kind, secrets)
    data = text.encode("utf-8")
    members.insert(0, (MANIFEST, data))
    files.insert(0, BundledFile(MANIFEST, "manifest", len(data), count))
    size = write_archive(path, path.name.removesuffix(".tar.gz"), members, now)
    return BundleResult(path, files, skipped, size, time.monotonic() - started)


def _unique(name: str, taken: set[str]) -> str:
    # Names come partly from PM2 app names: no way out of the bundle's folder, and two apps
    # whose names differ only in characters a path cannot hold must not overwrite each other.
    parts = [part for part in PurePosixPath(name).parts if part not in ("/", ".", "..")]
    name = "/".join(parts) or "unnamed"
    candidate, number = name, 2
    while candidate in taken:
        stem, dot, suffix = name.rpartition(".")
        candidate = f"{stem}-{number}.{suffix}" if dot else f"{name}-{number}"
        number += 1
    taken.add(candidate)
    return candidate
