"""The one JSON log record: ``timestamp`` (UTC, ISO-8601, milliseconds, ``Z``), ``level``,
``event``, then the fields — whoever writes it (structlog in the CLI, the media service's
audit lines, the stdlib-only supervisor) and wherever it lands (stderr for PM2 and journald).

Standard library only, and nothing at import time: ``media/supervisor.py`` runs as a bare
interpreter to stay small and imports this module without the package's dependencies.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any


def timestamp(moment: datetime | None = None) -> str:
    """``2026-12-01T20:30:38.123Z``: the one spelling of a moment in vmkeeper's records."""
    moment = (moment or datetime.now(UTC)).astimezone(UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(event: str, level: str = "info", **fields: Any) -> dict[str, Any]:
    """The record as a dict, fixed keys first; they win over a field of the same name."""
    fixed = {"timestamp": timestamp(), "level": level, "event": event}
    return {**fixed, **{k: v for k, v in fields.items() if k not in fixed}}


def line(event: str, level: str = "info", **fields: Any) -> str:
    """The record as one JSON line (no newline); values JSON cannot hold are written as text."""
    return json.dumps(record(event, level, **fields), default=str, ensure_ascii=False)
