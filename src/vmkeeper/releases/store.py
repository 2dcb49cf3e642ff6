"""The releases folder: ``<root>/<UTC timestamp>-<short sha>/frontend``, listing and ids."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from pathlib import Path

from vmkeeper import logrecord
from vmkeeper.atomic import write_atomic
from vmkeeper.errors import VmkeeperError

TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"
RELEASE_ID = re.compile(r"^(?P<stamp>\d{8}T\d{6}Z)-(?P<sha>[0-9a-f]{7,40})$")


class BadReleaseId(VmkeeperError):
    exit_code = 2


@dataclass(frozen=True)
class Release:
    id: str
    sha: str
    created_at: datetime
    path: Path  # the release directory; the app is at path / frontend_dir

    def app_dir(self, frontend_dir: str = "frontend") -> Path:
        return self.path / frontend_dir


def new_release_id(sha: str, now: datetime | None = None) -> str:
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    return f"{moment.strftime(TIMESTAMP_FORMAT)}-{sha[:12]}"


def parse_release_id(release_id: str) -> tuple[datetime, str]:
    """Split an id into its time and sha; refuse anything that could name another path."""
    if "/" in release_id or "\\" in release_id or ".." in release_id or "\0" in release_id:
        raise BadReleaseId(
            f"Release id {release_id!r} contains a path separator or '..': "
            "give an id as `vmkeeper releases` lists it."
        )
    match = RELEASE_ID.match(release_id)
    if not match:
        raise BadReleaseId(
            f"{release_id!r} is not a release id (expected <UTC timestamp>-<sha>, e.g. "
            "20260612T031415Z-abc1234): see `vmkeeper releases`."
        )
    stamp = datetime.strptime(match["stamp"], TIMESTAMP_FORMAT).replace(tzinfo=UTC)
    return stamp, match["sha"]


def list_releases(root: Path) -> list[Release]:
    """Release directories under ``root``, newest first; other entries are ignored."""
    if not root.is_dir():
        return []
    found: list[Release] = []
    for entry in root.iterdir():
        if not entry.is_dir() or entry.is_symlink():
            continue
        try:
            created, sha = parse_release_id(entry.name)
        except BadReleaseId:
            continue
        found.append(Release(entry.name, sha, created, entry))
    return sorted(found, key=lambda r: (r.created_at, r.id), reverse=True)


def release_containing(root: Path, cwd: Path | None, frontend_dir: str = "frontend") -> str | None:
    """The id of the release whose app directory is ``cwd`` (PM2's pm_cwd), if any."""
    if cwd is None:
        return None
    try:
        relative = cwd.resolve().relative_to(root.resolve())
    except ValueError:
        return None
    parts = relative.parts
    if len(parts) >= 1 and RELEASE_ID.match(parts[0]):
        return parts[0]
    return None


# --- each release's own record: what state it reached -----------------------------------------


MARKER = ".vmkeeper-release.json"
TRASH_PREFIX = ".trash-"


class ReleaseState(str, Enum):
    """How far a release got. Only GOOD releases count toward retention."""

    BUILDING = "building"  # steps 2-6 under way (or a deploy was killed during them)
    BUILT = "built"        # steps 2-6 done, never served healthily (yet)
    GOOD = "good"          # served its health check after a switch or rollback
    FAILED = "failed"      # started but never became healthy; reverted
    UNKNOWN = "unknown"    # no record: made by another tool (the executor) or an older vmkeeper


@dataclass(frozen=True)
class ReleaseMeta:
    id: str
    sha: str
    branch: str | None
    state: ReleaseState
    size_bytes: int | None = None
    updated_at: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id, "sha": self.sha, "branch": self.branch, "state": self.state.value,
            "size_bytes": self.size_bytes, "updated_at": self.updated_at,
        }


def read_meta(release_dir: Path) -> ReleaseMeta | None:
    try:
        data = json.loads((release_dir / MARKER).read_text())
        return ReleaseMeta(
            id=str(data["id"]), sha=str(data["sha"]), branch=data.get("branch"),
            state=ReleaseState(data["state"]), size_bytes=data.get("size_bytes"),
            updated_at=data.get("updated_at"),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def write_meta(release_dir: Path, meta: ReleaseMeta) -> ReleaseMeta:
    """Write the record atomically (vmkeeper.atomic): a kill never leaves half of it."""
    stamped = ReleaseMeta(
        meta.id, meta.sha, meta.branch, meta.state, meta.size_bytes,
        logrecord.timestamp(),
    )
    write_atomic(release_dir / MARKER, json.dumps(stamped.to_json()))
    return stamped


def set_state(release_dir: Path, state: ReleaseState, size_bytes: int | None = None) -> None:
    meta = read_meta(release_dir)
    if meta is None:
        return
    write_meta(release_dir, ReleaseMeta(
        meta.id, meta.sha, meta.branch, state,
        size_bytes if size_bytes is not None else meta.size_bytes,
    ))


def state_of(release: Release) -> ReleaseState:
    meta = read_meta(release.path)
    return meta.state if meta else ReleaseState.UNKNOWN


def directory_size(path: Path) -> int:
    """Bytes on disk under ``path`` (hard links counted once, symlinks not followed)."""
    total = 0
    seen: set[tuple[int, int]] = set()
    for folder, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                info = os.lstat(os.path.join(folder, name))
                key = (info.st_dev, info.st_ino)
                if info.st_nlink > 1:
                    if key in seen:
                        continue
                    seen.add(key)
                total += info.st_blocks * 512
    return total


def remove_release(root: Path, release_id: str) -> None:
    """Rename into a trash name first (atomic), then delete: a kill mid-way leaves a directory
    that is plainly trash, never a half-deleted one that still looks like a release."""
    parse_release_id(release_id)
    source = root / release_id
    if not source.exists():
        return
    trash = root / f"{TRASH_PREFIX}{release_id}-{os.getpid()}"
    os.replace(source, trash)
    shutil.rmtree(trash, ignore_errors=True)


def empty_trash(root: Path) -> list[str]:
    removed = []
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name.startswith((TRASH_PREFIX, ".archive-")) and entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
    return removed


def release_dir(root: Path, release_id: str) -> Path:
    """The directory of a well-formed id, guaranteed to be directly inside ``root``."""
    parse_release_id(release_id)
    path = root / release_id
    if path.resolve().parent != root.resolve():
        raise BadReleaseId(f"Release id {release_id!r} does not name a directory in {root}.")
    return path
