"""Logging: structlog to stderr, warnings and up by default, never on stdout (--json owns it).

``VMKEEPER_LOG_LEVEL`` (debug, info, warning…) and ``VMKEEPER_LOG_FORMAT=json`` change it.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog


def configure(level: str | None = None, fmt: str | None = None) -> None:
    name = (level or os.environ.get("VMKEEPER_LOG_LEVEL") or "warning").upper()
    numeric = logging.getLevelName(name)
    if not isinstance(numeric, int):
        numeric = logging.WARNING
    json_format = (fmt or os.environ.get("VMKEEPER_LOG_FORMAT") or "").lower() == "json"
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if json_format
        else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
