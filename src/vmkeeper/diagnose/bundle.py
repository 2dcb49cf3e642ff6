"""`vmkeeper bundle`: one redacted tar.gz holding the evidence of an incident.

Each source (health, PM2, logs, the kernel's OOM kills, the host) is collected in its own thread
under its own deadline; one that fails or hangs is listed as skipped with the reason and the
bundle is written anyway, because at 3 a.m. a bundle without the journal beats no bundle.
Every file passes through the redactor before it touches the disk; the archive is written to a
temporary file beside the target, mode 0600, then renamed into place.
"""

from __future__ import annotations

import base64
import io
import json
import os
import socket
import tarfile
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote, quote_plus

from vmkeeper.errors import VmkeeperError
from vmkeeper.jsonable import json_text, parse_json, to_jsonable
from vmkeeper.redact import DocumentKind, key_kind, marker, redact_document, redact_text

Progress = Callable[[str], None]

# A secret shorter than this is too likely to occur by chance ("changeme" is 8) to be swept out
# of every other file by value; the redactor still finds it by key name and shape.
_MIN_SWEPT_SECRET = 8
MANIFEST = "manifest.json"


class BundleError(VmkeeperError):
    """The bundle cannot be written where asked."""


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

class _Run:
    def __init__(self, source: Source) -> None:
        self.source = source
        self.started: float | None = None
        self.done = threading.Event()
        self.gathered: list[Piece | Skipped] = []
        self.error: BaseException | None = None

    def start(self) -> None:
        self.started = time.monotonic()
        # Daemon: a source stuck past its deadline (a hung NFS read) must not hold up exit.
        threading.Thread(target=self._work, name=f"bundle:{self.source.name}",
                         daemon=True).start()

    def _work(self) -> None:
        try:
            self.gathered = list(self.source.collect())
        except Exception as error:  # noqa: BLE001 - any failure of a source is a skip, by design
            self.error = error
        finally:
            self.done.set()


def gather(sources: Sequence[Source], *, timeout_s: float, workers: int = 3,
           progress: Progress = lambda _m: None) -> tuple[list[tuple[str, Piece]], list[Skipped]]:
    """Run every source, at most ``workers`` at once, each within ``timeout_s`` of its start.

    Returns (source name, piece) pairs and the skips, both in the order of ``sources``.
    """
    runs = [_Run(source) for source in sources]
    waiting, active = deque(runs), list[_Run]()
    outcome: dict[int, list[Piece | Skipped]] = {}
    while waiting or active:
        # A timed-out run no longer counts against the limit: it cannot block the others.
        while waiting and len(active) < workers:
            run = waiting.popleft()
            run.start()
            active.append(run)
        for run in list(active):
            index = runs.index(run)
            if run.done.is_set():
                active.remove(run)
                outcome[index] = _finished(run)
            elif run.started is not None and time.monotonic() - run.started > timeout_s:
                active.remove(run)
                outcome[index] = [Skipped(run.source.name, f"timed out after {timeout_s:g} s")]
                progress(f"gave up on {run.source.name} after {timeout_s:g} s")
        if active:
            active[0].done.wait(0.05)
    pieces: list[tuple[str, Piece]] = []
    skipped: list[Skipped] = []
    for index, run in enumerate(runs):
        for item in outcome[index]:
            if isinstance(item, Skipped):
                skipped.append(Skipped(item.source, redact_text(item.reason)))
            else:
                pieces.append((run.source.name, item))
    return pieces, skipped


def _finished(run: _Run) -> list[Piece | Skipped]:
    if run.error is not None:
        return [Skipped(run.source.name, reason_of(run.error))]
    if not run.gathered:
        return [Skipped(run.source.name, "the source returned nothing")]
    return run.gathered


# ------------------------------------------------------------------------------ redaction

def _walk_secrets(value: Any, under: str | None, found: dict[str, str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            _walk_secrets(item, key_kind(str(key)) or under, found)
    elif isinstance(value, list):
        for item in value:
            _walk_secrets(item, under, found)
    elif under is not None and isinstance(value, str) and len(value) >= _MIN_SWEPT_SECRET \
            and not value.startswith("«"):
        found.setdefault(value, under)


def known_secrets(pieces: Iterable[Piece]) -> dict[str, str]:
    """Values that JSON pieces hold under secret key names (PM2's env), with their kinds.

    PM2 dumps name every secret of the app's environment; the same value printed by an app into
    its log, or passed in a command line, carries no name there. Sweeping those values out of
    every file closes that gap, in the forms a log may print them: as is, URL-encoded, base64.
    """
    found: dict[str, str] = {}
    for piece in pieces:
        if piece.kind is DocumentKind.JSON:
            try:
                _walk_secrets(parse_json(piece.text, piece.name), None, found)
            except ValueError:
                continue
    variants: dict[str, str] = {}
    for value, kind in found.items():
        raw = value.encode()
        for form in (value, quote(value, safe=""), quote_plus(value),
                     base64.b64encode(raw).decode(), base64.urlsafe_b64encode(raw).decode()):
            for variant in (form, form.rstrip("=")):
                if len(variant) >= _MIN_SWEPT_SECRET:
                    variants.setdefault(variant, kind)
    return variants


def _sweep_string(text: str, secrets: Mapping[str, str]) -> tuple[str, int]:
    count = 0
    for value in sorted(secrets, key=len, reverse=True):  # longest first: a value's superset
        if value in text:
            count += text.count(value)
            text = text.replace(value, marker(secrets[value]))
    return text, count


def _sweep_json(value: Any, secrets: Mapping[str, str], counter: list[int]) -> Any:
    if isinstance(value, dict):
        return {k: _sweep_json(v, secrets, counter) for k, v in value.items()}
    if isinstance(value, list):
        return [_sweep_json(v, secrets, counter) for v in value]
    if isinstance(value, str):
        swept, count = _sweep_string(value, secrets)
        counter[0] += count
        return swept
    return value


def redact_piece(piece: Piece, secrets: Mapping[str, str]) -> tuple[str, int]:
    """The piece's text with known secret values swept out, then redacted; and how many."""
    if piece.kind is DocumentKind.JSON:
        try:
            document = parse_json(piece.text, piece.name)
        except ValueError:
            piece = Piece(piece.name, piece.text, DocumentKind.TEXT)  # a torn dump: keep lines
        else:
            counter = [0]
            swept = _sweep_json(document, secrets, counter)
            # Sweep inside the parsed document, not the text: a value with a quote or a
            # backslash is spelled differently in JSON. Keep the producer's layout.
            indent = 2 if "\n" in piece.text.strip() else None
            text = json.dumps(swept, indent=indent, ensure_ascii=False)
            if piece.text.endswith("\n"):
                text += "\n"
            result = redact_document(text, DocumentKind.JSON)
            return result.text, counter[0] + len(result.findings)
    text, count = _sweep_string(piece.text, secrets)
    result = redact_document(text, piece.kind)
    return result.text, count + len(result.findings)


# ------------------------------------------------------------------------------ the archive

def stamp(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def resolve_output(output: Path | None, now: datetime) -> Path:
    """The archive path: ``output``, a default name inside it if it is a folder, or in cwd."""
    name = f"vmkeeper-bundle-{stamp(now)}.tar.gz"
    path = Path.cwd() / name if output is None else output / name if output.is_dir() else output
    if not path.parent.is_dir():
        raise BundleError(f"the folder {path.parent} does not exist: create it or give -o a "
                          "path in an existing folder.", exit_code=2)
    return path


def write_archive(path: Path, root: str, members: Sequence[tuple[str, bytes]],
                  now: datetime) -> int:
    """Write ``members`` under ``root/`` into a gzipped tar at ``path``, atomically, mode 0600.

    Returns the archive's size. Raises BundleError if the folder cannot be written.
    """
    mtime = int(now.timestamp())
    folders = sorted({str(parent) for name, _ in members
                      for parent in PurePosixPath(root, name).parents if str(parent) != "."})
    try:
        # mkstemp creates the file 0600 from the start: no window where the secrets-adjacent
        # bundle is world-readable, whatever the umask.
        descriptor, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                            suffix=".tmp")
    except OSError as error:
        raise BundleError(f"cannot write in {path.parent} ({error.strerror}): give -o a "
                          "writable path.") from None
    try:
        with os.fdopen(descriptor, "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as archive:
                for folder in folders:
                    info = tarfile.TarInfo(folder)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, mtime
                    archive.addfile(info)
                for name, data in members:
                    info = tarfile.TarInfo(f"{root}/{name}")
                    info.size, info.mode, info.mtime = len(data), 0o600, mtime
                    archive.addfile(info, io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(temp, 0o600)
        os.replace(temp, path)
    except BaseException as error:
        Path(temp).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise BundleError(f"cannot write {path} ({error.strerror or error}).") from None
        raise
    _fsync_folder(path.parent)
    return path.stat().st_size


def _fsync_folder(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # some filesystems refuse fsync on a folder; the rename itself is atomic
    finally:
        os.close(descriptor)


# ------------------------------------------------------------------------------ the service

@dataclass(frozen=True)
class BundleOptions:
    output: Path | None = None
    timeout_s: float = 30.0
    workers: int = 3
    now: datetime | None = None
    extra_manifest: Mapping[str, Any] = field(default_factory=dict)


def create_bundle(sources: Sequence[Source], options: BundleOptions = BundleOptions(),
                  progress: Progress = lambda _m: None) -> BundleResult:
    """Collect ``sources``, redact every file, write the archive; skip what cannot be had.

    Raises BundleError only when the archive itself cannot be written.
    """
    started = time.monotonic()
    now = options.now or datetime.now(UTC)
    path = resolve_output(options.output, now)
    progress(f"collecting {len(sources)} sources, each within {options.timeout_s:g} s")
    gathered, skipped = gather(sources, timeout_s=options.timeout_s, workers=options.workers,
                               progress=progress)
    secrets = known_secrets(piece for _source, piece in gathered)
    members: list[tuple[str, bytes]] = []
    files: list[BundledFile] = []
    taken: set[str] = {MANIFEST}
    for source, piece in gathered:
        name = _unique(piece.name, taken)
        text, count = redact_piece(piece, secrets)
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
    text, count = redact_piece(json_piece(MANIFEST, manifest), secrets)
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
