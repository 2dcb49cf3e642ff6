"""`vmkeeper rollback`: the runbook's manual rollback, health-gated and locked like a deploy.

    cd <releases>/<id>/frontend && pm2 delete frontend-dev
    FRONT_PORT=3001 pm2 start npm --name frontend-dev -- run start && pm2 save --force
"""

from __future__ import annotations

import uuid

from vmkeeper.adapters.pm2 import Pm2
from vmkeeper.errors import DeployError, VmkeeperError
from vmkeeper.releases import build, history, live, lock, retention, store, switch
from vmkeeper.releases.activation import Target
from vmkeeper.releases.results import ReleaseRow, ReleasesReport, RollbackResult
from vmkeeper.settings import Settings


def previous_release(settings: Settings, active_id: str | None) -> str:
    """The newest good release older than the active one (or the newest, if none is active)."""
    root = settings.releases.root
    for release in store.list_releases(root):
        if active_id is not None and release.id >= active_id:
            continue
        if store.state_of(release) in retention.COUNTS_AS_GOOD and build.has_build_output(
                settings, release.app_dir(settings.workspace.frontend_dir)):
            return release.id
    raise DeployError(
        f"There is no retained good release older than {active_id or 'the active one'} in "
        f"{root}: see `vmkeeper releases`."
    )


def resolve_target(settings: Settings, release_id: str) -> store.Release:
    """Refuse hostile, unknown or unbuilt ids before anything changes."""
    root = settings.releases.root
    path = store.release_dir(root, release_id)  # BadReleaseId (exit 2) for separators, '..'
    release = next((r for r in store.list_releases(root) if r.path == path), None)
    if release is None:
        raise DeployError(f"No release {release_id} in {root}: see `vmkeeper releases`.")
    if not build.has_build_output(settings, release.app_dir(settings.workspace.frontend_dir)):
        raise DeployError(
            f"Release {release_id} has no {settings.releases.build_output}/ to serve (its build "
            "never finished): pick another from `vmkeeper releases`."
        )
    return release


def rollback(
    settings: Settings,
    release_id: str | None = None,
    *,
    previous: bool = False,
    wait_s: float = 0.0,
    pm2: Pm2 | None = None,
    switcher: switch.Switcher | None = None,
) -> RollbackResult:
    """Start frontend-dev from a retained release through the gated switch; revert if it does
    not answer.

    Raises BadReleaseId (exit 2) or DeployError for an id it refuses, LockHeld while a deploy
    runs. Changes nothing unless the target is valid. ``switcher`` is the fast tests' seam.
    """
    if (release_id is None) == (not previous):
        raise DeployError("Give a release id or --previous (not both).", exit_code=2)
    if switcher is None:
        switcher = switch.switcher_for(settings, pm2 or live.pm2_client(settings))
    root = settings.releases.root
    if release_id is not None:
        resolve_target(settings, release_id)
    with lock.acquire(root, "rollback", wait_s=wait_s):
        started = switcher.clock()
        recovered = switcher.activation.recover()
        state = live.read_live(settings, switcher.pm2, start_daemon=True)
        target_id = release_id or previous_release(settings, state.active_id)
        target = resolve_target(settings, target_id)
        run = uuid.uuid4().hex[:12]
        history.append(root, {"run": run, "phase": "started", "command": "rollback",
                              "release": target_id})
        finished: dict[str, object] = {"result": "interrupted"}
        try:
            # The same measurement as a deploy's: requests through the proxy during the switch.
            with switch.TrafficWatch(settings.public_url.rstrip("/") + "/",
                                     probe=switcher.probe) as watch:
                outcome = switcher.switch_to(
                    Target(target.app_dir(settings.workspace.frontend_dir), target_id,
                           {"RELEASE_ID": target_id}),
                    Target(state.active_dir, state.active_id) if state.active_dir else None)
            result = _result(settings, switcher, outcome, state.active_id,
                             switcher.clock() - started, watch, recovered)
            finished = {"previous": state.active_id, "active": result.active,
                        "result": "ok" if result.ok else (
                            "reverted" if result.reverted else "failed"),
                        "error": result.error, "seconds": result.seconds,
                        "failed_requests": result.failed_requests,
                        "longest_gap_s": result.longest_gap_s}
            return result
        finally:
            # Whatever happened above, the run is recorded as finished (never left "started").
            history.append(root, {"run": run, "phase": "finished", "command": "rollback",
                                  "release": target_id, **finished})


def _result(settings: Settings, switcher: switch.Switcher, outcome: switch.SwitchOutcome,
            previous: str | None, seconds: float, watch: switch.TrafficWatch,
            recovered: list[str]) -> RollbackResult:
    target = outcome.target.label
    problems: list[str] = []
    if not outcome.serving:
        problems.append(f"Release {target} {outcome.failure}; {outcome.revert}")
    if not outcome.saved:
        problems.append(f"pm2 save failed ({outcome.save_error}): a reboot would start "
                        "what the old dump says")
    notes = [*recovered, *outcome.notes]
    if outcome.dump_note:
        notes.append(outcome.dump_note)
    try:
        active = live.read_live(settings, switcher.pm2).active_id
    except VmkeeperError as error:
        active = None
        notes.append(f"could not read PM2's list after the switch ({error})")
    return RollbackResult(
        ok=not problems, active=active, previous=previous,
        error="; ".join(problems) + "." if problems else None, target=target,
        reverted=outcome.reverted, dump_agrees=outcome.dump_agrees,
        seconds=round(seconds, 3), notes=notes, failed_requests=watch.failed,
        longest_gap_s=round(watch.longest_gap_s, 3),
    )


def list_releases(settings: Settings, pm2: Pm2 | None = None) -> ReleasesReport:
    """Retained releases newest first, the live one marked (PM2's cwd), the dump compared."""
    client = pm2 or live.pm2_client(settings)
    state = live.read_live(settings, client)
    rows = []
    for release in store.list_releases(settings.releases.root):
        meta = store.read_meta(release.path)
        size = meta.size_bytes if meta and meta.size_bytes else store.directory_size(release.path)
        rows.append(ReleaseRow(
            id=release.id, sha=meta.sha if meta else release.sha, created_at=release.created_at,
            path=release.path, size_bytes=size,
            state=(meta.state if meta else store.ReleaseState.UNKNOWN).value,
            active=release.id == state.active_id, in_dump=release.id == state.dump_id,
            has_build=build.has_build_output(
                settings, release.app_dir(settings.workspace.frontend_dir)),
        ))
    return ReleasesReport(
        active=state.active_id, dump_active=state.dump_id, releases=rows,
        warnings=state.warnings(settings.apps.frontend.name),
    )
