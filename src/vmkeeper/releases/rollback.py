"""`vmkeeper rollback`: the runbook's manual rollback, health-gated and locked like a deploy.

    cd <releases>/<id>/frontend && pm2 delete frontend-dev
    FRONT_PORT=3001 pm2 start npm --name frontend-dev -- run start && pm2 save --force
"""

from __future__ import annotations

import time
import uuid

from vmkeeper.adapters.pm2 import Pm2
from vmkeeper.errors import DeployError, VmkeeperError
from vmkeeper.releases import build, history, live, lock, retention, store, switch
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
) -> RollbackResult:
    """Start frontend-dev from a retained release; revert if it does not answer.

    Raises BadReleaseId (exit 2) or DeployError for an id it refuses, LockHeld while a deploy
    runs. Changes nothing unless the target is valid.
    """
    if (release_id is None) == (not previous):
        raise DeployError("Give a release id or --previous (not both).", exit_code=2)
    client = pm2 or live.pm2_client(settings)
    root = settings.releases.root
    if release_id is not None:
        resolve_target(settings, release_id)
    with lock.acquire(root, "rollback", wait_s=wait_s):
        started = time.monotonic()
        state = live.read_live(settings, client, start_daemon=True)
        target_id = release_id or previous_release(settings, state.active_id)
        target = resolve_target(settings, target_id)
        app_dir = target.app_dir(settings.workspace.frontend_dir)
        run = uuid.uuid4().hex[:12]
        history.append(root, {"run": run, "phase": "started", "command": "rollback",
                              "release": target_id})
        notes: list[str] = []
        reverted = False
        error: str | None = None
        try:
            switch.activate(settings, client, app_dir, {"RELEASE_ID": target_id})
            ready = switch.wait_until_serving(settings, pm2=client, app_dir=app_dir)
            if ready.ok:
                store.set_state(target.path, store.ReleaseState.GOOD)
            else:
                error = f"Release {target_id} did not answer ({ready.last})"
        except VmkeeperError as failed:
            error = f"Starting release {target_id} failed ({str(failed).rstrip('.')})"
        if error is not None and state.active_dir is not None:
            reverted = True
            switch.activate(settings, client, state.active_dir)
            back = switch.wait_until_serving(settings, pm2=client, app_dir=state.active_dir)
            error += ("; reverted to " + (state.active_id or str(state.active_dir))
                      + ("" if back.ok else f", which does not answer either ({back.last})") + ".")
        client.save(force=True)
        agrees, why = live.dump_matches(
            settings, client, app_dir if error is None else (state.active_dir or app_dir))
        if not agrees:
            notes.append(why)
        after = live.read_live(settings, client)
        result = RollbackResult(
            ok=error is None, active=after.active_id, previous=state.active_id, error=error,
            target=target_id, reverted=reverted, dump_agrees=agrees,
            seconds=round(time.monotonic() - started, 3), notes=notes,
        )
        history.append(root, {
            "run": run, "phase": "finished", "command": "rollback", "release": target_id,
            "previous": state.active_id, "active": after.active_id,
            "result": "ok" if result.ok else ("reverted" if reverted else "failed"),
            "error": error, "seconds": result.seconds,
        })
        return result


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
