"""The agent's audit log: append-only JSONL, each record hash-chained to the one before.

Every record carries ``seq`` (1, 2, …), ``prev`` (the previous record's hash, 64 zeros for
the first) and ``hash`` = SHA-256 of ``prev`` and the record's canonical JSON without
``hash``. An edited line no longer matches its hash, a removed or reordered line breaks the
next line's ``prev`` or the ``seq`` count; ``audit.head`` (written atomically after each
append) holds the last seq and hash, so cutting lines off the end is caught too.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vmkeeper import flock
from vmkeeper.atomic import atomic_file
from vmkeeper.logrecord import timestamp

GENESIS = "0" * 64
AUDIT_FILE = "audit.jsonl"
HEAD_FILE = "audit.head"


def _digest(prev: str, record: dict[str, Any]) -> str:
    body = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256((prev + body).encode()).hexdigest()


def _read_head(state_dir: Path) -> tuple[int, str]:
    try:
        data = json.loads((state_dir / HEAD_FILE).read_text())
        return int(data["seq"]), str(data["hash"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0, GENESIS


def append(state_dir: Path, **fields: Any) -> dict[str, Any]:
    """Append one record (who, request_id, operation, before, after, result…); returns it."""
    state_dir.mkdir(parents=True, exist_ok=True)
    with flock.hold(state_dir / "audit.lock", "audit append", wait_s=10):
        seq, prev = _read_head(state_dir)
        record = {"seq": seq + 1, "at": timestamp(), **fields, "prev": prev}
        record["hash"] = _digest(prev, record)
        line = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
        fd = os.open(state_dir / AUDIT_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, (line + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        with atomic_file(state_dir / HEAD_FILE) as handle:
            handle.write(json.dumps({"seq": record["seq"], "hash": record["hash"]}).encode())
    return record


@dataclass(frozen=True)
class Verdict:
    ok: bool
    records: int
    bad_line: int | None = None  # 1-based line number of the first record that fails
    reason: str | None = None


def verify(state_dir: Path) -> Verdict:
    """Walk the chain; the first line whose hash, ``prev`` or ``seq`` is wrong is named."""
    path = state_dir / AUDIT_FILE
    prev, count = GENESIS, 0
    try:
        lines = path.read_bytes().splitlines() if path.exists() else []
    except OSError as error:
        return Verdict(False, 0, None, f"the audit log cannot be read: {error.strerror}")
    for number, raw in enumerate(lines, 1):
        failure = _check_line(raw, number, prev)
        if failure:
            return Verdict(False, count, number, failure)
        prev, count = json.loads(raw)["hash"], number
    head_seq, head_hash = _read_head(state_dir)
    if (head_seq, head_hash) != (count, prev):
        return Verdict(False, count, count + 1 if head_seq > count else count,
                       f"the log ends at record {count} but audit.head names record {head_seq}: "
                       "lines were removed from the end or the head was altered")
    return Verdict(True, count)


def _check_line(raw: bytes, number: int, prev: str) -> str | None:
    try:
        record = json.loads(raw)
    except ValueError:
        return "the line is not JSON"
    if not isinstance(record, dict) or not isinstance(record.get("hash"), str):
        return "the line is not an audit record"
    claimed = record.pop("hash")
    if record.get("seq") != number:
        return f"record number {record.get('seq')!r} where {number} was expected (removed or " \
               "reordered lines)"
    if record.get("prev") != prev:
        return "it does not chain to the line before (a line was removed or reordered)"
    if _digest(prev, record) != claimed:
        return "its content does not match its hash (the line was edited)"
    return None
