"""`deploy --dry-run`: the commands and paths a deploy would use, and what it would refuse.

Read-only: no fetch (it would move remote-tracking refs), no lock, no directory, no PM2 call
that could start the daemon. The sha shown is what the workspace knows of the branch now; the
precheck adds what the remote has for it now (`git ls-remote`, which changes no ref).
"""

from __future__ import annotations

import shlex
import shutil
from pathlib import Path

from vmkeeper import __version__, flock, proc
from vmkeeper.adapters import git as git_adapter
from vmkeeper.adapters.pm2 import Pm2
from vmkeeper.errors import CommandError
from vmkeeper.releases import activation, cleanup, live, lock, retention, store, switch
from vmkeeper.releases.results import STEP_TITLES, DeployResult, PlannedStep, Precheck
from vmkeeper.settings import Settings


def _cmd(argv: list[str], cwd: object | None = None, env: dict[str, str] | None = None) -> str:
    """One shell line that runs ``argv`` (secrets masked): every word quoted, so a branch name
    such as ``x;rm -rf ~`` pasted from the plan stays one argument instead of a second command."""
    # Only the value is quoted: a quoted `'K=v'` would be read as a command name, not an
    # assignment.
    assignments = [f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()]
    text = " ".join([*assignments, shlex.join(proc.mask_arg(str(a)) for a in argv)])
    return f"(cd {shlex.quote(str(cwd))} && {text})" if cwd else text


def _niced(settings: Settings, argv: list[str]) -> list[str]:
    # What proc.run's ``nice`` does in-process, spelled as the equivalent commands.
    return ["nice", "-n", str(settings.releases.nice), "ionice", "-c2", "-n7", *argv]


def dry_run(settings: Settings, branch: str, pm2: Pm2) -> DeployResult:
    repo = settings.workspace.path
    remote = settings.workspace.remote
    root = settings.releases.root
    # ``branch`` was checked by deploy() (git check-ref-format) before this was called.
    git = git_adapter.Git(repo, settings.releases.git_timeout_s)
    notes: list[str] = []
    sha: str | None = None
    try:
        dirty = git.dirty_paths()
        if dirty:
            notes.append("would refuse: the workspace has uncommitted changes "
                         f"({', '.join(dirty)})")
        sha = git.rev_parse(f"{remote}/{branch}") or git.rev_parse(branch)
    except CommandError as error:
        notes.append(f"cannot read the workspace: {error}")
    remote_sha, remote_error = None, None
    try:
        remote_sha = git.remote_sha(remote, branch)
    except CommandError as error:
        remote_error = str(error)
    holder = flock.live_holder(root / lock.LOCK_NAME)
    if holder is not None:
        notes.append(f"would wait or refuse: another deploy or rollback holds the lock "
                     f"({holder.describe()})")
    state = live.read_live(settings, pm2)
    notes.extend(state.warnings(settings.apps.frontend.name))
    release_id = store.new_release_id(sha or "0" * 12)
    release_dir = root / release_id
    app_dir = release_dir / settings.workspace.frontend_dir
    free_mb = _free_mb(root)
    if free_mb is not None:
        notes.append(f"{free_mb:.0f} MB free in {root}")
    env_files = [name for name in settings.releases.env_files
                 if (settings.frontend_workspace / name).is_file()]
    leftovers = retention.plan_leftovers(cleanup.candidates(root), cleanup.protected_ids(state))
    after = [*cleanup.candidates(root),
             retention.Candidate(release_id, store.ReleaseState.GOOD)]
    prunable = retention.plan_prune(
        [c for c in after if c.id not in leftovers], settings.releases.keep,
        frozenset({release_id}))
    app = settings.apps.frontend
    steps = [
        PlannedStep("pull", STEP_TITLES["pull"], [
            _cmd(git_adapter.fetch_argv(repo, remote, branch)),
            _cmd(git_adapter.switch_argv(repo, branch)) + "   # only if not on it",
            _cmd(git_adapter.merge_ff_only_argv(repo, remote, branch)),
        ], [str(repo)]),
        PlannedStep("archive", STEP_TITLES["archive"], [
            _cmd(git_adapter.archive_argv(repo, sha or "HEAD", root / "<tmp>.tar",
                                          settings.workspace.frontend_dir)),
        ], [str(release_dir)]),
        PlannedStep("env", STEP_TITLES["env"], [f"copy {settings.frontend_workspace / n}"
                                                for n in env_files]),
        PlannedStep("install", STEP_TITLES["install"],
                    [_cmd(_niced(settings, settings.releases.install_command), app_dir)]),
        PlannedStep("build", STEP_TITLES["build"],
                    [_cmd(_niced(settings, settings.releases.build_command), app_dir)]),
        PlannedStep("clean", STEP_TITLES["clean"],
                    [f"remove {app_dir / p}" for p in settings.releases.remove_paths]),
        PlannedStep("switch", STEP_TITLES["switch"], [
            _cmd([pm2.bin, "delete", app.name]),
            _cmd(activation.start_argv(settings, pm2), app_dir, {"FRONT_PORT": str(app.port)}),
            (f"wait up to {settings.releases.ready_timeout_s:g} s for "
             f"{switch.frontend_url(settings)} → {app.expected_status or 200}"),
            _cmd([pm2.bin, "save", "--force"]),
        ]),
        PlannedStep("save", STEP_TITLES["save"], [
            f"check that {pm2.dump_path} starts {app.name} from {app_dir}",
            *[f"remove {root / r}" for r in prunable],
        ]),
    ]
    if leftovers:
        notes.append("would first remove leftovers of failed runs: " + ", ".join(leftovers))
    return DeployResult(
        ok=True, release=release_id, previous=state.active_id, active=state.active_id,
        failed_step=None, steps=[], pruned=prunable, error=None, branch=branch, sha=sha,
        dry_run=True, plan=steps, notes=notes,
        precheck=Precheck(__version__, free_mb, holder.describe() if holder else None,
                          _sha_of(root, state.active_id), remote_sha, remote_error),
    )


def _free_mb(root: Path) -> float | None:
    # The releases root, or the nearest folder above it that exists (before the first deploy).
    for folder in (root, *root.parents):
        if folder.exists():
            return round(shutil.disk_usage(folder).free / 1024 / 1024, 1)
    return None


def _sha_of(root: Path, release_id: str | None) -> str | None:
    if not release_id:
        return None
    meta = store.read_meta(root / release_id)
    return meta.sha if meta else None
