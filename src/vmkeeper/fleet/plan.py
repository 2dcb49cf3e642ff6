"""`vmkeeper fleet plan deploy`: per host its wave, current and target release, and the
prechecks that would stop its deploy — changes nothing.

Each host answers `vmkeeper deploy --dry-run --json --branch B` (read-only on the host: no
fetch, no lock, no folder) and its ``precheck`` is judged here against the controller: free
space where the release would go (``fleet.min_free_mb``), whoever holds the host's deploy lock
*now* (the host asks the kernel, flock.live_holder: a name left in the file by a deploy killed
-9 holds nothing), whether the host reaches its git remote, and the host's vmkeeper version
against this one's. The target sha is what the host's remote has for the branch now (asked
with `git ls-remote`, which moves no ref), else what its workspace last fetched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmkeeper import __version__
from vmkeeper.fleet import waves as wave_plan
from vmkeeper.fleet.health import remote_for
from vmkeeper.fleet.records import new_run_id, run_dir
from vmkeeper.fleet.runner import FleetRunner, HostOutcome, Reach, ansible_run
from vmkeeper.progress import Progress, silent
from vmkeeper.settings import Settings


@dataclass(frozen=True)
class PlannedHost:
    host: str
    wave: int
    reachable: bool
    current_release: str | None
    current_sha: str | None
    target_sha: str | None = None
    disk_free_mb: float | None = None
    lock_holder: str | None = None
    vmkeeper_version: str | None = None
    # What would stop this host's deploy, one sentence each; empty: ready.
    prechecks: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return not self.prechecks


@dataclass(frozen=True)
class DeployPlan:
    branch: str
    waves: list[list[str]]
    hosts: list[PlannedHost]
    halt_after: int
    policy: str
    controller_version: str = __version__

    @property
    def ready(self) -> bool:
        return all(h.ready for h in self.hosts)


def plan_deploy(settings: Settings, inventory: Path, branch: str, *, pattern: str = "all",
                sizes: list[int | str] | None = None, runner: FleetRunner = ansible_run,
                progress: Progress = silent) -> DeployPlan:
    """Per host its wave, its current release and what would stop it — changes nothing."""
    args = ["deploy", "--dry-run", "--json", "--branch", branch]
    outcomes = runner(inventory, remote_for(settings, args, pattern),
                      run_dir(settings.state_dir, new_run_id()), progress)
    hosts = [o.host for o in outcomes]
    plan = wave_plan.plan_waves(hosts, sizes or settings.fleet.waves)
    wave_of = {host: index for index, wave in enumerate(plan) for host in wave}
    rows = [planned_host(o, wave_of[o.host], branch, settings.fleet.min_free_mb)
            for o in outcomes]
    return DeployPlan(branch, plan, rows,
                      wave_plan.halt_limit(settings.fleet.halt_threshold, len(hosts)),
                      settings.fleet.halt_policy)


def planned_host(outcome: HostOutcome, wave: int, branch: str, min_free_mb: int) -> PlannedHost:
    """One host's row from its dry run's JSON (or from why there is none)."""
    if outcome.reach is not Reach.ANSWERED or outcome.data is None:
        why = outcome.message or "vmkeeper printed no JSON"
        return PlannedHost(outcome.host, wave, outcome.reach is Reach.ANSWERED, None, None,
                           prechecks=[f"{outcome.reach.value}: {why}"])
    data = outcome.data
    active = str(data["active"]) if data.get("active") else None
    found = data.get("precheck")
    pre: dict[str, Any] = found if isinstance(found, dict) else {}
    target = _text(pre.get("remote_sha")) or _text(data.get("sha"))
    free, holder = _number(pre.get("disk_free_mb")), _text(pre.get("lock_holder"))
    version = _text(pre.get("vmkeeper_version"))
    checks: list[str] = []
    if not data.get("ok", True) or data.get("error"):
        checks.append(f"the dry run failed: {data.get('error') or 'no reason given'}")
    if not pre:
        checks.append(f"the host's vmkeeper reports no prechecks (older than {__version__}?):"
                      " upgrade it with the ansible/roles/vmkeeper role")
    elif version != __version__:
        checks.append(f"vmkeeper {version} on the host, {__version__} here: upgrade the "
                      "host (ansible/roles/vmkeeper) or this controller so they match")
    if pre.get("remote_error"):
        checks.append(f"the host cannot ask its git remote for {branch!r}: "
                      f"{pre['remote_error']}")
    elif target is None:
        checks.append(f"neither the host's git remote nor its workspace has branch {branch!r}:"
                      " push it, or check workspace.remote")
    if pre and free is None:
        checks.append("free disk space is unknown (the releases folder is unreadable)")
    elif free is not None and free < min_free_mb:
        checks.append(f"only {free:.0f} MB free where releases go, fleet.min_free_mb is "
                      f"{min_free_mb}: free space (`vmkeeper releases`, old logs) first")
    if holder:
        checks.append(f"a deploy or rollback holds the host's deploy lock now ({holder}): "
                      "wait for it to finish")
    if active is None:
        checks.append("no active release (the first deploy has no previous release to "
                      "roll back to)")
    return PlannedHost(outcome.host, wave, True, active, _text(pre.get("active_sha")), target,
                       free, holder, version, checks)


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        else None
