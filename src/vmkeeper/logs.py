"""Logging: structlog to stderr, warnings and up by default, never on stdout (--json owns it).

``VMKEEPER_LOG_LEVEL`` (debug, info, warning…) and ``VMKEEPER_LOG_FORMAT=json`` change it.
Entry points call :func:`configure` (the CLI's ``main``); importing vmkeeper configures nothing.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from vmkeeper import logrecord


def _as_record(_logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """Every record in vmkeeper.logrecord's shape: its timestamp, then level, event, fields."""
    fields = dict(event_dict)
    event = str(fields.pop("event", ""))
    level = str(fields.pop("level", method))
    return logrecord.record(event, level, **fields)


def json_format() -> bool:
    """Whether log records are asked for as JSON lines (``VMKEEPER_LOG_FORMAT=json``)."""
    return os.environ.get("VMKEEPER_LOG_FORMAT", "").lower() == "json"


def configure(level: str | None = None, fmt: str | None = None) -> None:
    name = (level or os.environ.get("VMKEEPER_LOG_LEVEL") or "warning").upper()
    numeric = logging.getLevelName(name)
    if not isinstance(numeric, int):
        numeric = logging.WARNING
    as_json = fmt.lower() == "json" if fmt else json_format()
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(default=str, ensure_ascii=False) if as_json
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            _as_record,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
