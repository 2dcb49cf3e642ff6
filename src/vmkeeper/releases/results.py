"""The values deploy, rollback and releases return (rendered by the CLI, serialised by --json)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

# The runbook's eight steps, in order; these names are `failed_step` and `steps[].name`.
STEPS: tuple[str, ...] = (
    "pull", "archive", "env", "install", "build", "clean", "switch", "save",
)

STEP_TITLES: dict[str, str] = {
    "pull": "pull the branch into the workspace",
    "archive": "archive HEAD into a new release",
    "env": "copy env files",
    "install": "npm ci",
    "build": "npm run build",
    "clean": "remove build caches",
    "switch": "switch frontend-dev, wait until it serves, pm2 save",
    "save": "check the dump, remove old releases",
}


@dataclass(frozen=True)
class StepResult:
    name: str
    ok: bool
    seconds: float
    detail: str = ""


@dataclass(frozen=True)
class PlannedStep:
    name: str
    title: str
    commands: list[str]
    paths: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Precheck:
    """What a dry run found that decides whether a deploy can start now (read by
    `fleet plan deploy`): who holds the deploy lock now (None: nobody, whatever the lock file
    says), free space where the release would go, the release live now and its sha, and the
    sha the remote has for the branch now (`git ls-remote`: read-only, unlike a fetch)."""

    vmkeeper_version: str
    disk_free_mb: float | None
    lock_holder: str | None
    active_sha: str | None
    remote_sha: str | None = None
    remote_error: str | None = None  # why the remote could not be asked


@dataclass(frozen=True)
class DeployResult:
    ok: bool
    release: str | None
    previous: str | None
    active: str | None
    failed_step: str | None
    steps: list[StepResult]
    pruned: list[str]
    error: str | None
    branch: str
    sha: str | None = None
    dry_run: bool = False
    plan: list[PlannedStep] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    reverted: bool = False
    failed_requests: int | None = None
    longest_gap_s: float | None = None
    dump_agrees: bool | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    history: Path | None = None
    precheck: Precheck | None = None  # dry runs only


@dataclass(frozen=True)
class RollbackResult:
    ok: bool
    active: str | None
    previous: str | None
    error: str | None
    target: str | None = None
    reverted: bool = False
    dump_agrees: bool | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    # Requests through the proxy during the switch, as for a deploy.
    failed_requests: int | None = None
    longest_gap_s: float | None = None


@dataclass(frozen=True)
class ReleaseRow:
    id: str
    sha: str
    created_at: datetime
    path: Path
    size_bytes: int | None
    state: str
    active: bool
    in_dump: bool
    has_build: bool


@dataclass(frozen=True)
class ReleasesReport:
    active: str | None
    dump_active: str | None
    releases: list[ReleaseRow]
    warnings: list[str] = field(default_factory=list)
