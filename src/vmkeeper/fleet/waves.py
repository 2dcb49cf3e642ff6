"""Wave planning and the halt rule: pure functions, so the policy is tested without a host.

Sizes follow Ansible's ``serial``: each entry is a batch size (a count or a percentage of all
hosts, rounded up, at least one), and the last entry repeats until every host has a wave. The
halt rule is the one users expect and Ansible's ``max_fail_percentage`` is not (#32255): the
run halts when the failures *reach* the threshold, not when they exceed it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from vmkeeper.errors import UsageError


def _size(entry: int | str, total: int, what: str) -> int:
    text = str(entry).strip()
    try:
        if text.endswith("%"):
            percent = float(text[:-1])
            if not 0 < percent <= 100:
                raise ValueError
            return max(1, math.ceil(total * percent / 100))
        count = int(text)
        if count < 1:
            raise ValueError
        return count
    except ValueError:
        raise UsageError(f"{what} {entry!r} is not a host count (≥ 1) or a percentage like "
                         "'25%': fix fleet.waves or --waves.") from None


def plan_waves(hosts: Sequence[str], sizes: Sequence[int | str]) -> list[list[str]]:
    """Split ``hosts`` (in inventory order) into waves of the given sizes."""
    if not sizes:
        raise UsageError("fleet.waves is empty: give at least one size, like [1, '25%', '100%'].")
    waves: list[list[str]] = []
    start = 0
    index = 0
    while start < len(hosts):
        entry = sizes[min(index, len(sizes) - 1)]
        count = _size(entry, len(hosts), "wave size")
        waves.append(list(hosts[start:start + count]))
        start += count
        index += 1
    return waves


def halt_limit(threshold: int | str, total: int) -> int:
    """How many failed hosts halt the run (at least one)."""
    return _size(threshold, total, "halt threshold")


def should_halt(failed: int, threshold: int | str, total: int) -> bool:
    """True when ``failed`` hosts reach the threshold."""
    return failed >= halt_limit(threshold, total)


def parse_sizes(text: str) -> list[int | str]:
    """``--waves 1,25%,100%`` as a list of sizes."""
    return [part.strip() for part in text.split(",") if part.strip()]
