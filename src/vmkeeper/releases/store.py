"""The releases folder: ``<root>/<UTC timestamp>-<short sha>/frontend``, listing and ids."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

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
    moment = (now or datetime.now(timezone.utc)).astimezone(timezone.utc)
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
    stamp = datetime.strptime(match["stamp"], TIMESTAMP_FORMAT).replace(tzinfo=timezone.utc)
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
