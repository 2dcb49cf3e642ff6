"""git: the workspace checkout (fetch, fast-forward, archive) through proc.run.

argv builders are pure functions so the deploy's dry run can show exactly what would run.
Nothing here resets or cleans a checkout: the runbook forbids it in the live workspace.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmkeeper import proc


def git_argv(repo: Path, *args: str) -> list[str]:
    return ["git", "-C", str(repo), *args]


def fetch_argv(repo: Path, remote: str, branch: str) -> list[str]:
    # An explicit refspec updates refs/remotes/<remote>/<branch> even in a single-branch clone.
    return git_argv(
        repo, "fetch", "--no-tags", remote,
        f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}",
    )


def merge_ff_only_argv(repo: Path, remote: str, branch: str) -> list[str]:
    return git_argv(repo, "merge", "--ff-only", "--quiet", f"{remote}/{branch}")


def switch_argv(repo: Path, branch: str) -> list[str]:
    return git_argv(repo, "switch", "--quiet", branch)


def archive_argv(repo: Path, ref: str, destination_tar: Path, *paths: str) -> list[str]:
    return git_argv(repo, "archive", "--format=tar", "-o", str(destination_tar), ref, "--", *paths)


@dataclass(frozen=True)
class Divergence:
    ahead: int   # local commits the remote branch does not have
    behind: int  # remote commits the local branch does not have

    @property
    def diverged(self) -> bool:
        return self.ahead > 0 and self.behind > 0


def parse_left_right(text: str) -> Divergence:
    """`git rev-list --left-right --count HEAD...<remote>/<branch>` prints "<ahead>\t<behind>"."""
    parts = text.split()
    if len(parts) != 2:
        raise ValueError(f"unexpected `git rev-list --count` output: {text!r}")
    return Divergence(int(parts[0]), int(parts[1]))


def parse_dirty(porcelain: str) -> list[str]:
    """Paths with uncommitted changes to tracked files, from `git status --porcelain`."""
    return [line[3:] for line in porcelain.splitlines() if len(line) > 3]


@dataclass(frozen=True)
class Git:
    repo: Path
    timeout: float = 120.0

    def _run(self, *args: str, check: bool = True, timeout: float | None = None) -> proc.Result:
        return proc.run(git_argv(self.repo, *args), timeout=timeout or self.timeout, check=check)

    def head_sha(self) -> str:
        return self._run("rev-parse", "HEAD").stdout.strip()

    def rev_parse(self, ref: str) -> str | None:
        result = self._run("rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}", check=False)
        return result.stdout.strip() if result.ok else None

    def current_branch(self) -> str:
        return self._run("rev-parse", "--abbrev-ref", "HEAD").stdout.strip()

    def status_porcelain(self) -> str:
        return self._run("status", "--porcelain", "--untracked-files=no").stdout

    def dirty_paths(self) -> list[str]:
        return parse_dirty(self.status_porcelain())

    def remotes(self) -> list[str]:
        return self._run("remote").stdout.split()

    def fetch(self, remote: str, branch: str) -> proc.Result:
        return proc.run(fetch_argv(self.repo, remote, branch), timeout=self.timeout)

    def divergence(self, remote: str, branch: str) -> Divergence:
        result = self._run("rev-list", "--left-right", "--count", f"HEAD...{remote}/{branch}")
        return parse_left_right(result.stdout)

    def switch(self, branch: str) -> proc.Result:
        # `git switch B` creates B tracking <remote>/B when only the remote branch exists.
        return proc.run(switch_argv(self.repo, branch), timeout=self.timeout)

    def merge_ff_only(self, remote: str, branch: str) -> proc.Result:
        return proc.run(merge_ff_only_argv(self.repo, remote, branch), timeout=self.timeout)

    def init(self, branch: str = "main") -> None:
        proc.run(["git", "init", "-q", "-b", branch, str(self.repo)], timeout=self.timeout)

    def commit_all(self, message: str) -> None:
        self._run("add", "-A")
        self._run(
            "-c", "user.name=vmkeeper", "-c", "user.email=vmkeeper@localhost",
            "commit", "-q", "--allow-empty", "-m", message,
        )

    def archive_to(self, ref: str, destination_tar: Path, *paths: str) -> None:
        proc.run(archive_argv(self.repo, ref, destination_tar, *paths), timeout=self.timeout)

