"""git: the workspace checkout (fetch, fast-forward, archive) through proc.run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmkeeper import proc


@dataclass(frozen=True)
class Git:
    repo: Path
    timeout: float = 120.0

    def _run(self, *args: str, check: bool = True) -> proc.Result:
        return proc.run(["git", "-C", str(self.repo), *args], timeout=self.timeout, check=check)

    def head_sha(self) -> str:
        return self._run("rev-parse", "HEAD").stdout.strip()

    def short_sha(self, ref: str = "HEAD") -> str:
        return self._run("rev-parse", "--short=12", ref).stdout.strip()

    def current_branch(self) -> str:
        return self._run("rev-parse", "--abbrev-ref", "HEAD").stdout.strip()

    def status_porcelain(self) -> str:
        return self._run("status", "--porcelain", "--untracked-files=no").stdout

    def init(self, branch: str = "main") -> None:
        proc.run(["git", "init", "-q", "-b", branch, str(self.repo)], timeout=self.timeout)

    def commit_all(self, message: str) -> None:
        self._run("add", "-A")
        self._run(
            "-c", "user.name=vmkeeper", "-c", "user.email=vmkeeper@localhost",
            "commit", "-q", "--allow-empty", "-m", message,
        )

    def archive_to(self, ref: str, destination_tar: Path) -> None:
        self._run("archive", "--format=tar", "-o", str(destination_tar), ref)
