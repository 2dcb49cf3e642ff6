"""Removing releases: leftovers of killed or failed runs before a build, old ones after a switch.

Every removal re-checks, just before deleting, that the directory is neither what PM2 runs nor
what dump.pm2 would resurrect — the plan was made earlier, and "cleanup deleted the live
release" is the failure operators fear most.
"""

from __future__ import annotations

from pathlib import Path

from vmkeeper.adapters import host
from vmkeeper.releases import retention, store
from vmkeeper.releases.live import LiveState


def candidates(root: Path) -> list[retention.Candidate]:
    return [retention.Candidate(r.id, store.state_of(r)) for r in store.list_releases(root)]


def protected_ids(live: LiveState) -> frozenset[str]:
    return frozenset(i for i in (live.active_id, live.dump_id) if i)


def stop_orphans(release_path: Path) -> list[int]:
    """Kill processes still working inside ``release_path`` (an `npm ci` or a build whose
    deploy was SIGKILLed keeps running in its own session and would write into a deleted tree)."""
    return host.kill_processes(host.processes_working_in(release_path))


def remove(root: Path, release_id: str, live: LiveState) -> bool:
    """Remove one release unless it is live or saved; return whether it was removed."""
    if release_id in protected_ids(live):
        return False
    path = root / release_id
    for running in (live.active_dir,):
        if running is not None and running.resolve().is_relative_to(path.resolve()):
            return False
    stop_orphans(path)
    store.remove_release(root, release_id)
    return True


def remove_leftovers(root: Path, live: LiveState, in_progress: str | None = None) -> list[str]:
    removed = list(store.empty_trash(root))
    for release_id in retention.plan_leftovers(candidates(root), protected_ids(live), in_progress):
        if remove(root, release_id, live):
            removed.append(release_id)
    return removed


def prune(root: Path, keep: int, live: LiveState) -> list[str]:
    plan = retention.plan_prune(candidates(root), keep, protected_ids(live))
    return [release_id for release_id in plan if remove(root, release_id, live)]
