"""The one progress type every service reports through, whatever the interface renders.

A service never prints: it calls ``progress(event)`` and the interface decides (the CLI's dim
lines on stderr, nothing under ``--json``; the agent's server-sent events; the watcher's log).
One event shape serves a step of a pipeline (deploy's eight steps), a line of a command's
output, a plain note, and a count of work done (frames of a reversal).
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum


class Phase(str, Enum):
    STARTED = "started"
    DONE = "done"
    FAILED = "failed"
    NOTE = "note"
    OUTPUT = "output"  # one line a command printed
    COUNT = "count"  # ``done`` of ``total`` units of work


class ProgressEvent:
    """What happened, in one sentence (``message``), with the structure a machine reads.

    ``step``/``index`` name a pipeline step (deploy's ``"build"``, 5); ``seconds`` is the time
    since that step started; ``done``/``total`` count units of work. Immutable. A plain class,
    not a dataclass: the media supervisor imports it and must stay small (``dataclasses``
    imports ``inspect``: media/job.py), and not a NamedTuple, whose ``index`` is tuple's.
    """

    _FIELDS = ("message", "phase", "step", "index", "seconds", "done", "total")  # in order
    __slots__ = _FIELDS
    message: str
    phase: Phase
    step: str | None
    index: int | None
    seconds: float | None
    done: int | None
    total: int | None

    def __init__(self, message: str, phase: Phase = Phase.NOTE, step: str | None = None,
                 index: int | None = None, seconds: float | None = None,
                 done: int | None = None, total: int | None = None) -> None:
        for name, value in zip(self._FIELDS,
                               (message, phase, step, index, seconds, done, total), strict=True):
            object.__setattr__(self, name, value)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"ProgressEvent is immutable: cannot set {name}")

    def _asdict(self) -> dict[str, object]:
        return {name: getattr(self, name) for name in self._FIELDS}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProgressEvent) and self._asdict() == other._asdict()

    def __hash__(self) -> int:
        return hash(tuple(self._asdict().values()))

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={value!r}" for name, value in self._asdict().items())
        return f"ProgressEvent({fields})"


Progress = Callable[[ProgressEvent], None]


def silent(_event: ProgressEvent) -> None:
    """The default progress callback: services run the same whether anyone watches."""


def note(progress: Progress, message: str) -> None:
    """Report a plain sentence."""
    progress(ProgressEvent(message))
