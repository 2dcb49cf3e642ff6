"""Logging: structlog to stderr, warnings and up by default, never on stdout (--json owns it).

``VMKEEPER_LOG_LEVEL`` (debug, info, warning…) and ``VMKEEPER_LOG_FORMAT=json`` change it.

structlog (with the Rich and asyncio it imports) costs ~50 ms to import, and most runs log
nothing at the default level: `configure()` only records the choice, and structlog is imported
and configured when the first record that passes the level is written (`get_logger`).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from vmkeeper import logrecord

if TYPE_CHECKING:
    from structlog.typing import FilteringBoundLogger

_METHOD_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
                  "warn": logging.WARNING, "error": logging.ERROR, "exception": logging.ERROR,
                  "critical": logging.CRITICAL}


@dataclass
class _Choice:
    level: int = logging.WARNING
    json_format: bool = False
    applied: bool = False


# Logging is process-wide by nature (structlog's own configuration is a global too).
_choice = _Choice()


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
    """Choose the level and format (an entry point calls this once, before anything logs)."""
    name = (level or os.environ.get("VMKEEPER_LOG_LEVEL") or "warning").upper()
    numeric = logging.getLevelName(name)
    _choice.level = numeric if isinstance(numeric, int) else logging.WARNING
    _choice.json_format = fmt.lower() == "json" if fmt else json_format()
    _choice.applied = False


def _apply() -> None:
    import structlog

    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(default=str, ensure_ascii=False) if _choice.json_format
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            _as_record,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_choice.level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    _choice.applied = True


def _drop(*_args: Any, **_kwargs: Any) -> None:
    return None


class _LazyLogger:
    """A structlog logger that imports structlog only for a record that passes the level."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __getattr__(self, method: str) -> Callable[..., Any]:
        level = _METHOD_LEVELS.get(method)
        if level is not None and level < _choice.level:
            return _drop
        if not _choice.applied:
            _apply()
        import structlog

        return cast("Callable[..., Any]", getattr(structlog.get_logger(self._name), method))


def get_logger(name: str) -> FilteringBoundLogger:
    """The logger for ``name``; without configure(), warnings and up go to stderr."""
    return cast("FilteringBoundLogger", _LazyLogger(name))
