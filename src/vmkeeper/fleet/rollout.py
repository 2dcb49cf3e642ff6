"""The health-gated rolling deploy: waves, a soak, the halt rule, hold or converge, resume.

Each wave's hosts deploy at once (vmkeeper on each host, its ``deploy --json`` parsed); after
``fleet.soak_s`` the wave's health is asked again, and only a wave whose every host deployed
and is healthy lets the next one start. Failed hosts are counted across the run and the run
halts the moment they *reach* the threshold. ``hold`` leaves the split as it is and records
it; ``converge`` rolls back the hosts this run switched, each to the release it had before.
The record is saved after every wave, so ``--resume`` continues from the halted wave with the
hosts that are not yet deployed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from vmkeeper.errors import UsageError
from vmkeeper.fleet import records
from vmkeeper.fleet import waves as wave_plan
from vmkeeper.fleet.health import FleetStatus, host_health, remote_for
from vmkeeper.fleet.records import HostRecord, HostState, RunRecord, RunState
from vmkeeper.fleet.runner import FleetRunner, HostOutcome, Reach, ansible_run, list_hosts
from vmkeeper.progress import Phase, Progress, ProgressEvent, silent
from vmkeeper.settings import Settings

HEALTHY = (FleetStatus.OK, FleetStatus.WARN)  # warn serves traffic; critical/unknown does not


@dataclass(frozen=True)
class Rollout:
    """What a rolling deploy needs besides the settings; tests swap the runner and the sleep."""

    inventory: Path
    runner: FleetRunner = ansible_run
    sleep: Callable[[float], None] = time.sleep
    progress: Progress = silent
    hosts_of: Callable[[Path, str], list[str]] = field(default=list_hosts)


def start(settings: Settings, rollout: Rollout, branch: str, *, pattern: str = "all",
          sizes: list[int | str] | None = None) -> RunRecord:
    """A new run: plan the waves, take the fleet lock, roll."""
    hosts = rollout.hosts_of(rollout.inventory, pattern)
    plan = wave_plan.plan_waves(hosts, sizes or settings.fleet.waves)
    fleet = settings.fleet
    record = RunRecord(
        records.new_run_id(), "deploy", branch, fleet.halt_policy, str(fleet.halt_threshold),
        plan, {h: HostRecord(h, i) for i, wave in enumerate(plan) for h in wave})
    return _locked(settings, rollout, record)


def resume(settings: Settings, rollout: Rollout, run_id: str) -> RunRecord:
    """Continue a halted run from the wave it halted in, with the hosts not yet deployed."""
    record = records.load(settings.state_dir, run_id)
    if record.state is RunState.DONE:
        raise UsageError(f"fleet run {run_id} has finished: start a new one with "
                         "`vmkeeper fleet deploy --branch B`.")
    # The first wave holding a host not yet deployed: after converge that is the canary's.
    first = min((h.wave for h in record.hosts.values() if h.state is not HostState.DEPLOYED),
                default=len(record.waves))
    return _locked(settings, rollout, replace(record, state=RunState.RUNNING, wave=first,
                                              halted_reason=None))


def _locked(settings: Settings, rollout: Rollout, record: RunRecord) -> RunRecord:
    lock = records.take_lock(settings.state_dir, "fleet deploy", record.run_id)
    try:
        records.save(settings.state_dir, record)
        return _roll(settings, rollout, record)
    finally:
        lock.release()


def _roll(settings: Settings, rollout: Rollout, record: RunRecord) -> RunRecord:
    total = len(record.hosts)
    failed = 0  # counted from this start: a resume is a fresh chance for the rest
    for index in range(record.wave, len(record.waves)):
        todo = [h for h in record.waves[index]
                if record.hosts[h].state is not HostState.DEPLOYED]
        _note(rollout, f"wave {index + 1}/{len(record.waves)}: {', '.join(todo) or 'nothing'}",
              Phase.STARTED, index)
        record = replace(record, wave=index)
        if todo:
            record = _wave(settings, rollout, record, index, todo)
        failed += sum(1 for h in todo if record.hosts[h].state is not HostState.DEPLOYED)
        if wave_plan.should_halt(failed, record.threshold, total):
            return _halt(settings, rollout, record, failed)
        record = replace(record, wave=index + 1)
        records.save(settings.state_dir, record)
        _note(rollout, f"wave {index + 1} healthy", Phase.DONE, index)
    record = replace(record, state=RunState.DONE)
    records.save(settings.state_dir, record)
    return record


def _wave(settings: Settings, rollout: Rollout, record: RunRecord, index: int,
          hosts: list[str]) -> RunRecord:
    folder = records.run_dir(settings.state_dir, record.run_id)
    args = ["deploy", "--json", *(["--branch", record.branch] if record.branch else [])]
    for outcome in _run(settings, rollout, args, hosts, folder / f"wave-{index + 1}-deploy"):
        record = record.with_host(_deployed(record.hosts[outcome.host], outcome))
    switched = [h for h in hosts if record.hosts[h].state is HostState.DEPLOYED]
    if not switched:
        return record
    if settings.fleet.soak_s > 0:
        _note(rollout, f"soaking wave {index + 1} for {settings.fleet.soak_s:g} s", Phase.NOTE,
              index)
        rollout.sleep(settings.fleet.soak_s)
    for outcome in _run(settings, rollout, ["health", "--json"], switched,
                        folder / f"wave-{index + 1}-health"):
        row = host_health(outcome)
        if row.status not in HEALTHY:
            record = record.with_host(replace(
                record.hosts[outcome.host], state=HostState.FAILED,
                error=f"not healthy after the soak: {row.status.value}: {row.verdict}"))
    return record


def _deployed(host: HostRecord, outcome: HostOutcome) -> HostRecord:
    data = outcome.data or {}
    if outcome.reach is Reach.UNREACHABLE:
        return replace(host, state=HostState.UNREACHABLE, error=outcome.message)
    if outcome.reach is Reach.ANSWERED and data.get("ok"):
        # The first deploy's "previous" is what converge returns to, whatever a resume redoes.
        previous = host.previous or (str(data["previous"]) if data.get("previous") else None)
        return replace(host, state=HostState.DEPLOYED, release=str(data.get("release")),
                       previous=previous, error=None)
    error = str(data.get("error") or outcome.message or "deploy failed")
    step = data.get("failed_step")
    return replace(host, state=HostState.FAILED,
                   error=f"{step}: {error}" if step else error)


def _halt(settings: Settings, rollout: Rollout, record: RunRecord, failed: int) -> RunRecord:
    reason = (f"{failed} failed host(s) reached the halt threshold {record.threshold} in wave "
              f"{record.wave + 1}")
    _note(rollout, f"halted: {reason} (policy {record.policy})", Phase.FAILED, record.wave)
    if record.policy == "converge":
        record = _converge(settings, rollout, record)
    record = replace(record, state=RunState.HALTED, halted_reason=reason)
    records.save(settings.state_dir, record)
    return record


def _converge(settings: Settings, rollout: Rollout, record: RunRecord) -> RunRecord:
    folder = records.run_dir(settings.state_dir, record.run_id)
    for host in [h for h in record.hosts.values()
                 if h.state is HostState.DEPLOYED and h.previous]:
        outcome = _run(settings, rollout, ["rollback", str(host.previous), "--json"],
                       [host.host], folder / f"converge-{host.host}")[0]
        ok = outcome.reach is Reach.ANSWERED and bool((outcome.data or {}).get("ok"))
        record = record.with_host(replace(
            host, state=HostState.ROLLED_BACK if ok else HostState.FAILED,
            error=None if ok else f"rollback failed: {outcome.message or outcome.data}"))
    return record


def _run(settings: Settings, rollout: Rollout, args: list[str], hosts: list[str],
         folder: Path) -> list[HostOutcome]:
    return rollout.runner(rollout.inventory, remote_for(settings, args, ":".join(hosts)), folder,
                          rollout.progress)


def _note(rollout: Rollout, message: str, phase: Phase, index: int) -> None:
    rollout.progress(ProgressEvent(message, phase, step="wave", index=index + 1))
