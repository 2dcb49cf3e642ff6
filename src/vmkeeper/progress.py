"""The one progress type every service reports through, whatever the interface renders.

A service never prints: it calls ``progress(event)`` and the interface decides (the CLI's dim
lines on stderr, nothing under ``--json``; the agent's server-sent events; the watcher's log).
One event shape serves a step of a pipeline (deploy's eight steps), a line of a command's
output, a plain note, and a count of work done (frames of a reversal).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum


class Phase(str, Enum):
    STARTED = "started"
    DONE = "done"
    FAILED = "failed"
    NOTE = "note"
    OUTPUT = "output"  # one line a command printed
    COUNT = "count"  # ``done`` of ``total`` units of work


@dataclass(frozen=True)
class ProgressEvent:
    """What happened, in one sentence (``message``), with the structure a machine reads.

    ``step``/``index`` name a pipeline step (deploy's ``"build"``, 5); ``seconds`` is the time
    since that step started; ``done``/``total`` count units of work.
    """

    message: str
    phase: Phase = Phase.NOTE
    step: str | None = None
    index: int | None = None
    seconds: float | None = None
    done: int | None = None
    total: int | None = None


Progress = Callable[[ProgressEvent], None]


def silent(_event: ProgressEvent) -> None:
    """The default progress callback: services run the same whether anyone watches."""


def note(progress: Progress, message: str) -> None:
    """Report a plain sentence."""
    progress(ProgressEvent(message))
