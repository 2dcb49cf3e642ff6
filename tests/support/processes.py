"""What a test started and left running: the live processes below this one that were not there
when the test began. A session's shared sandbox keeps daemons of its own below pytest (its
agent), and a "leaves no process" check must not count them."""

from __future__ import annotations

import os

import psutil


def _live_descendants() -> list[psutil.Process]:
    found = []
    for process in psutil.Process(os.getpid()).children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
        except psutil.NoSuchProcess:
            continue
    return found


class Spawned:
    """Taken at the start of a test; :meth:`left` is what appeared since and still runs."""

    def __init__(self) -> None:
        self._before = {(p.pid, p.create_time()) for p in _live_descendants()}

    def left(self) -> list[psutil.Process]:
        new = []
        for process in _live_descendants():
            try:
                if (process.pid, process.create_time()) not in self._before:
                    new.append(process)
            except psutil.NoSuchProcess:
                continue
        return new
