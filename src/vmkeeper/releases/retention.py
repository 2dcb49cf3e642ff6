"""Which releases to remove after a successful switch: a pure rule, property-tested.

The complaints this answers: failed releases counting toward retention and pushing out the
last good one, and cleanup deleting the live release. So only GOOD releases count; the active
release, the release dump.pm2 would resurrect, and the newest good release are never removed,
whatever ``keep`` says; releases that never became good are leftovers and always go.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vmkeeper.releases.store import ReleaseState


@dataclass(frozen=True)
class Candidate:
    id: str
    state: ReleaseState


# A release with no record but a full build (made by the executor or an older vmkeeper) is
# treated as good: it may be exactly what the operator rolled back to last week.
COUNTS_AS_GOOD = frozenset({ReleaseState.GOOD, ReleaseState.UNKNOWN})


def plan_prune(
    releases: Sequence[Candidate],
    keep: int,
    protected: frozenset[str] = frozenset(),
    in_progress: str | None = None,
) -> list[str]:
    """Ids to remove, given releases newest first (ids sort by time).

    ``protected``: the active release and the one dump.pm2 names. ``in_progress``: the release
    this run is building, never a leftover.
    """
    if keep < 1:
        raise ValueError("keep must be at least 1")
    ordered = sorted(releases, key=lambda r: r.id, reverse=True)
    good = [r.id for r in ordered if r.state in COUNTS_AS_GOOD]
    retained: set[str] = {r for r in protected if r in {c.id for c in ordered}}
    if good:
        retained.add(good[0])  # the last good release
    for release_id in good:
        if sum(1 for r in retained if r in good) >= keep:
            break
        retained.add(release_id)
    if in_progress:
        retained.add(in_progress)
    return [r.id for r in ordered if r.id not in retained]


def plan_leftovers(
    releases: Sequence[Candidate], protected: frozenset[str], in_progress: str | None = None
) -> list[str]:
    """Releases a killed or failed run left behind (never good, not live): removed before a
    new build, so a crash's debris cannot fill the disk the new release needs."""
    return [
        r.id for r in releases
        if r.state not in COUNTS_AS_GOOD and r.id not in protected and r.id != in_progress
    ]
