"""The deploy history: one JSON object per line, appended, next to the releases.

Append-only with O_APPEND and one write per record, so two writers never interleave inside a
line and a killed deploy leaves at most its "started" record — which the next deploy reports.
"""

from __future__ import annotations

import getpass
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vmkeeper import logrecord

HISTORY_NAME = "history.jsonl"


def history_path(root: Path) -> Path:
    return root / HISTORY_NAME


def who() -> str:
    """The person behind the run: sudo's caller when there is one."""
    user = os.environ.get("SUDO_USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def append(root: Path, record: Mapping[str, Any]) -> dict[str, Any]:
    root.mkdir(parents=True, exist_ok=True)
    full = {"time": logrecord.timestamp(), "who": who(),
            "pid": os.getpid(), **record}
    line = (json.dumps(full, default=str, ensure_ascii=False) + "\n").encode()
    # 0600: records carry errors, branches and users (chmod: a history from an older version).
    fd = os.open(history_path(root), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.fchmod(fd, 0o600)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)
    return full


def read(root: Path) -> list[dict[str, Any]]:
    """Every record, oldest first; a torn last line (power loss) is skipped, not fatal."""
    try:
        text = history_path(root).read_text()
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            records.append(data)
    return records


def unfinished(root: Path) -> list[dict[str, Any]]:
    """"started" records with no "finished" record of the same run: runs that were killed."""
    started: dict[str, dict[str, Any]] = {}
    for record in read(root):
        run = str(record.get("run"))
        if record.get("phase") == "started":
            started[run] = record
        elif record.get("phase") == "finished":
            started.pop(run, None)
    return list(started.values())
