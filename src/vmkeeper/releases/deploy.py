"""`vmkeeper deploy`: the runbook's eight "Frontend Release Deploys" steps, safe under failure.

Steps 1–6 touch only the workspace's git refs and a new release directory, so a failure there
removes that directory and nothing live changed. Step 7 is the one gated switch (switch.py):
PM2 starts the new release, it must answer, else the previous one comes back; either way PM2
is saved and the dump compared. Step 8 checks that the dump records the new release and
prunes — only after a healthy switch, so a failed release never pushes out a good one.
"""

from __future__ import annotations

import contextlib
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from vmkeeper.adapters import git as git_adapter
from vmkeeper.adapters.pm2 import Pm2
from vmkeeper.errors import DeployError, VmkeeperError
from vmkeeper.progress import Phase, Progress, ProgressEvent, silent
from vmkeeper.releases import build, cleanup, history, live, lock, plan, store, switch, testhook
from vmkeeper.releases.activation import Target
from vmkeeper.releases.results import STEP_TITLES, STEPS, DeployResult, StepResult
from vmkeeper.settings import Settings


class StepFailed(Exception):
    """A step's failure, already worded for the operator."""


class _Run:
    def __init__(self, settings: Settings, branch: str, progress: Progress,
                 switcher: switch.Switcher) -> None:
        self.settings = settings
        self.branch = branch
        self.progress = progress
        self.switcher = switcher
        self.pm2 = switcher.pm2
        self.root = settings.releases.root
        self.git = git_adapter.Git(settings.workspace.path, settings.releases.git_timeout_s)
        self.run_id = uuid.uuid4().hex[:12]
        self.steps: list[StepResult] = []
        self.notes: list[str] = []
        self.sha: str | None = None
        self.release_id: str | None = None
        self.release_path: Path | None = None
        self.previous_dir: Path | None = None
        self.previous_id: str | None = None
        self.live_state: live.LiveState | None = None
        self.reverted = False
        self.watch: switch.TrafficWatch | None = None
        self.outcome: switch.SwitchOutcome | None = None
        self.dump_agrees: bool | None = None
        self.pruned: list[str] = []
        self.cleaned: list[str] = []

    @property
    def app_dir(self) -> Path:
        assert self.release_path is not None
        return self.release_path / self.settings.workspace.frontend_dir

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[list[str]]:
        """Time one step, report it, pause there for the SIGKILL tests; details go in the list."""
        index = STEPS.index(name) + 1
        started = time.monotonic()
        details: list[str] = []
        self.progress(ProgressEvent(STEP_TITLES[name], Phase.STARTED, name, index))
        testhook.pause_if_requested(name, "start")
        try:
            yield details
            testhook.pause_if_requested(name, "end")
        except (VmkeeperError, OSError, StepFailed) as error:
            seconds = time.monotonic() - started
            self.steps.append(StepResult(name, False, seconds, "; ".join(details)))
            self.progress(ProgressEvent(str(error), Phase.FAILED, name, index, seconds))
            raise StepFailed(f"step {index} ({name}) failed: {_sentence(error)}") from None
        seconds = time.monotonic() - started
        self.steps.append(StepResult(name, True, seconds, "; ".join(details)))
        self.progress(ProgressEvent("; ".join(details), Phase.DONE, name, index, seconds))

    def output(self, name: str) -> Callable[[str], None]:
        """Each line the step's command prints, as an OUTPUT event of the step (the agent
        streams them; the CLI's step display passes them over)."""
        index = STEPS.index(name) + 1
        return lambda line: self.progress(ProgressEvent(line, Phase.OUTPUT, name, index))

    # --- steps 1-6 -----------------------------------------------------------------------------

    def pull(self, details: list[str]) -> None:
        remote, branch = self.settings.workspace.remote, self.branch
        dirty = self.git.dirty_paths()
        if dirty:
            shown = ", ".join(dirty[:5]) + (" …" if len(dirty) > 5 else "")
            raise DeployError(
                f"the workspace {self.git.repo} has uncommitted changes ({shown}); commit or "
                "stash them yourself — vmkeeper never resets or cleans the workspace"
            )
        if remote not in self.git.remotes():
            raise DeployError(
                f"the workspace has no git remote {remote!r} to pull from: add it "
                f"(`git remote add {remote} URL`) or set workspace.remote"
            )
        self.git.fetch(remote, branch)
        if self.git.current_branch() != branch:
            self.git.switch(branch)
            details.append(f"switched the workspace to {branch}")
        divergence = self.git.divergence(remote, branch)
        if divergence.diverged:
            raise DeployError(
                f"{branch} in the workspace and {remote}/{branch} have diverged "
                f"({divergence.ahead} local, {divergence.behind} remote commits); reconcile them "
                "by hand — vmkeeper only fast-forwards"
            )
        if divergence.behind:
            self.git.merge_ff_only(remote, branch)
            details.append(f"fast-forwarded {divergence.behind} commit(s)")
        if divergence.ahead:
            details.append(f"{divergence.ahead} local commit(s) not on {remote}")
        self.sha = self.git.head_sha()
        details.append(f"{branch} at {self.sha[:12]}")

    def archive(self, details: list[str]) -> None:
        assert self.sha is not None
        self.check_disk(details)
        # Ids order releases by time (retention keeps the newest): a release made within the
        # second of the newest one takes the next second, so it still sorts after it.
        newest = max((r.created_at for r in store.list_releases(self.root)), default=None)
        now = datetime.now(UTC)
        if newest is not None and now < newest + timedelta(seconds=1):
            now = newest + timedelta(seconds=1)
        release_id = store.new_release_id(self.sha, now=now)
        self.release_id = release_id
        self.release_path = self.root / release_id
        self.release_path.mkdir(parents=True)
        store.write_meta(self.release_path, store.ReleaseMeta(
            release_id, self.sha, self.branch, store.ReleaseState.BUILDING))
        build.archive_frontend(self.settings, self.sha, self.release_path)
        if not (self.app_dir / "package.json").is_file():
            raise DeployError(
                f"{self.settings.workspace.frontend_dir}/package.json is not in {self.sha[:12]}"
            )
        details.append(str(self.release_path))

    def check_disk(self, details: list[str]) -> None:
        """Refuse before building when the previous release's size would not fit."""
        previous_size = 0
        if self.previous_id:
            meta = store.read_meta(self.root / self.previous_id)
            previous_size = (meta.size_bytes if meta and meta.size_bytes else None) \
                or store.directory_size(self.root / self.previous_id)
        margin = self.settings.releases.disk_margin_mb * 1024 * 1024
        free = shutil.disk_usage(self.root).free
        needed = previous_size + margin
        if free < needed:
            raise DeployError(
                f"not enough free disk space in {self.root}: {_mb(free)} free, a release needs "
                f"about {_mb(needed)} (the previous release's {_mb(previous_size)} plus "
                f"{_mb(margin)} margin); free some space (old releases: `vmkeeper releases`)"
            )
        details.append(f"{_mb(free)} free, need {_mb(needed)}")

    def build_env(self) -> dict[str, str]:
        assert self.sha is not None and self.release_id is not None
        return {"GIT_SHA": self.sha, "RELEASE_ID": self.release_id}

    def clean(self, details: list[str]) -> None:
        assert self.release_path is not None
        removed = build.remove_caches(self.settings, self.app_dir)
        details.append("removed " + (", ".join(removed) or "nothing"))
        if not build.has_build_output(self.settings, self.app_dir):
            raise DeployError(
                f"the build left no {self.settings.releases.build_output}/ in {self.app_dir}"
            )
        size = store.directory_size(self.release_path)
        store.set_state(self.release_path, store.ReleaseState.BUILT, size_bytes=size)
        details.append(f"release is {_mb(size)}")

    # --- steps 7-8 -----------------------------------------------------------------------------

    def switch(self, details: list[str]) -> None:
        assert self.release_id is not None
        target = Target(self.app_dir, self.release_id, self.build_env())
        previous = Target(self.previous_dir, self.previous_id) if self.previous_dir else None
        # Requests through the proxy during the switch: the operator's view of its cost.
        with switch.TrafficWatch(self.settings.public_url.rstrip("/") + "/",
                                 probe=self.switcher.probe) as watch:
            self.watch = watch
            outcome = self.switcher.switch_to(target, previous)
        self.outcome = outcome
        self.reverted = outcome.reverted
        self.dump_agrees = outcome.dump_agrees
        self.notes.extend(outcome.notes)
        if not outcome.serving:
            raise DeployError(f"the new release {outcome.failure}; {outcome.revert}")
        details.append(f"serving after {outcome.ready_seconds or 0:.1f} s")

    def save(self, details: list[str]) -> None:
        """The switch saved PM2; here its dump must hold the new release before anything old
        is pruned."""
        outcome = self.outcome
        assert outcome is not None
        if not outcome.saved:
            raise DeployError(f"pm2 save failed ({outcome.save_error})")
        if not outcome.dump_agrees:
            raise DeployError(f"pm2 save did not record the new release ({outcome.dump_note})")
        details.append("dump.pm2 starts the new release")
        state = live.read_live(self.settings, self.pm2)
        self.pruned = cleanup.prune(self.root, self.settings.releases.keep, state)
        details.append("pruned " + (", ".join(self.pruned) or "nothing"))

    # --- the whole run -------------------------------------------------------------------------

    def execute(self, held: lock.DeployLock) -> DeployResult:
        started = time.monotonic()
        for record in history.unfinished(self.root):
            self.notes.append(
                f"an earlier {record.get('command', 'run')} (pid {record.get('pid')}, "
                f"{record.get('time')}) did not finish; cleaning up after it"
            )
        history.append(self.root, {"run": self.run_id, "phase": "started", "command": "deploy",
                                   "branch": self.branch})
        # A switch killed half-way left the site served, but maybe by its temporary app:
        # finish that before anything is read as live or removed as a leftover.
        self.notes.extend(self.switcher.activation.recover())
        self.live_state = live.read_live(self.settings, self.pm2, start_daemon=True)
        self.previous_id = self.live_state.active_id
        self.previous_dir = self.live_state.active_dir
        self.cleaned = cleanup.remove_leftovers(self.root, self.live_state)
        failed_step: str | None = None
        error: str | None = None
        try:
            with self.step("pull") as details:
                self.pull(details)
            held.update(sha=self.sha)
            with self.step("archive") as details:
                self.archive(details)
            held.update(release=self.release_id)
            with self.step("env") as details:
                details.append("copied " + (", ".join(
                    build.copy_env_files(self.settings, self.app_dir)) or "none"))
            with self.step("install"):
                build.install(self.settings, self.app_dir, self.build_env(),
                              self.output("install"))
            with self.step("build"):
                build.build(self.settings, self.app_dir, self.build_env(), self.output("build"))
            with self.step("clean") as details:
                self.clean(details)
            with self.step("switch") as details:
                self.switch(details)
            with self.step("save") as details:
                self.save(details)
        except StepFailed as failure:
            failed_step = self.steps[-1].name if self.steps else None
            error = f"Deploy failed at {failure}"
            self.discard_failed(failed_step)
        except BaseException:
            # Ctrl-C or a bug: a half-built release must not stay behind looking like one.
            self.discard_failed(None)
            history.append(self.root, {"run": self.run_id, "phase": "finished",
                                       "command": "deploy", "result": "interrupted"})
            raise
        return self.finish(failed_step, error, time.monotonic() - started)

    def discard_failed(self, failed_step: str | None) -> None:
        if self.release_id is None:
            return
        state = live.read_live(self.settings, self.pm2)
        if failed_step == "save" and state.active_id == self.release_id:
            return  # the new release serves; only the save or the prune failed
        with contextlib.suppress(OSError, VmkeeperError):
            if cleanup.remove(self.root, self.release_id, state):
                self.notes.append(f"removed the failed release {self.release_id}")

    def finish(self, failed_step: str | None, error: str | None, seconds: float) -> DeployResult:
        state = live.read_live(self.settings, self.pm2)
        watch = self.watch
        result = DeployResult(
            ok=error is None, release=self.release_id, previous=self.previous_id,
            active=state.active_id, failed_step=failed_step, steps=self.steps,
            pruned=self.pruned, error=error, branch=self.branch, sha=self.sha,
            cleaned=self.cleaned, reverted=self.reverted,
            failed_requests=watch.failed if watch else None,
            longest_gap_s=round(watch.longest_gap_s, 3) if watch else None,
            dump_agrees=self.dump_agrees, seconds=round(seconds, 3), notes=self.notes,
            history=history.history_path(self.root),
        )
        history.append(self.root, {
            "run": self.run_id, "phase": "finished", "command": "deploy",
            "branch": self.branch, "sha": self.sha, "release": self.release_id,
            "previous": self.previous_id, "active": state.active_id,
            "result": "ok" if result.ok else ("reverted" if self.reverted else "failed"),
            "failed_step": failed_step, "error": error,
            "steps": {s.name: round(s.seconds, 3) for s in self.steps},
            "failed_requests": result.failed_requests, "longest_gap_s": result.longest_gap_s,
            "pruned": self.pruned, "seconds": result.seconds,
        })
        return result


def _sentence(error: BaseException) -> str:
    return str(error).rstrip(".")


def _mb(size: int) -> str:
    return f"{size / 1024 / 1024:.0f} MB"


def deploy(
    settings: Settings,
    *,
    branch: str | None = None,
    dry_run: bool = False,
    wait_s: float = 0.0,
    progress: Progress = silent,
    pm2: Pm2 | None = None,
    switcher: switch.Switcher | None = None,
) -> DeployResult:
    """Deploy ``branch`` (default workspace.branch) as a new release.

    Raises UsageError for a name git refuses as a branch, LockHeld if another deploy or
    rollback holds the lock (after ``wait_s``). A failed step is not an exception: the result
    says which step failed, why, and what was undone. ``switcher`` (its PM2, activation, site
    and clock) is the fast tests' seam.
    """
    chosen = branch or settings.workspace.branch
    # Refused before the lock or any git call: `--branch=--detach` once detached the workspace.
    git_adapter.Git(settings.workspace.path, settings.releases.git_timeout_s).check_branch(chosen)
    if switcher is None:
        switcher = switch.switcher_for(settings, pm2 or live.pm2_client(settings))
    if dry_run:
        return plan.dry_run(settings, chosen, switcher.pm2)
    with lock.acquire(settings.releases.root, "deploy", wait_s=wait_s, branch=chosen) as held:
        return _Run(settings, chosen, progress, switcher).execute(held)
