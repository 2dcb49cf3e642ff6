"""git: the workspace checkout (fetch, fast-forward, archive) through proc.run.

argv builders are pure functions so the deploy's dry run can show exactly what would run.
Nothing here resets or cleans a checkout: the runbook forbids it in the live workspace.

Every ref and remote name comes after an end-of-options marker, so a name such as ``--detach``
(`deploy --branch=--detach` once ran `git switch --quiet --detach`) is never read as an option:
``--`` where git takes it as that marker (fetch, switch, merge), ``--end-of-options`` where
``--`` separates revisions from paths (rev-parse, rev-list, archive). Branch names are checked
first with git's own rule, :meth:`Git.check_branch`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmkeeper import proc
from vmkeeper.errors import UsageError

END_OF_OPTIONS = "--end-of-options"


def git_argv(repo: Path, *args: str) -> list[str]:
    return ["git", "-C", str(repo), *args]


def check_branch_argv(branch: str) -> list[str]:
    # `--branch NAME` must be the whole argv: git takes NAME positionally, even `--detach`.
    return ["git", "check-ref-format", "--branch", branch]


def fetch_argv(repo: Path, remote: str, branch: str) -> list[str]:
    # An explicit refspec updates refs/remotes/<remote>/<branch> even in a single-branch clone.
    return git_argv(
        repo, "fetch", "--no-tags", "--", remote,
        f"+refs/heads/{branch}:refs/remotes/{remote}/{branch}",
    )


def merge_ff_only_argv(repo: Path, remote: str, branch: str) -> list[str]:
    return git_argv(repo, "merge", "--ff-only", "--quiet", "--", f"{remote}/{branch}")


def switch_argv(repo: Path, branch: str) -> list[str]:
    return git_argv(repo, "switch", "--quiet", "--", branch)


def archive_argv(repo: Path, ref: str, destination_tar: Path, *paths: str) -> list[str]:
    # archive keeps a `--` after --end-of-options as a path: the paths follow the ref directly.
    return git_argv(repo, "archive", "--format=tar", "-o", str(destination_tar),
                    END_OF_OPTIONS, ref, *paths)


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
    runner: proc.Runner = proc.run

    def _run(self, *args: str, check: bool = True, timeout: float | None = None) -> proc.Result:
        return self.runner(git_argv(self.repo, *args), timeout=timeout or self.timeout,
                           check=check)

    def check_branch(self, branch: str) -> str:
        """``branch`` if git accepts it as a branch name; else UsageError saying so.

        git's rule, not a copy of it: no leading ``-``, no ``..``, spaces, ``~^:?*[``, ``@{``…
        A name git rewrites (``@{-1}`` is the previous branch) is refused too: the deploy
        must act on the name it was given.
        """
        result = self.runner(check_branch_argv(branch), timeout=self.timeout, check=False)
        if not result.ok or result.stdout.strip() != branch:
            raise UsageError(
                f"{branch!r} is not a valid git branch name (`git check-ref-format --branch` "
                "refuses it): pass the name of a branch, such as main."
            )
        return branch

    def head_sha(self) -> str:
        return self._run("rev-parse", "HEAD").stdout.strip()

    def rev_parse(self, ref: str) -> str | None:
        result = self._run("rev-parse", "--verify", "--quiet", END_OF_OPTIONS,
                           f"{ref}^{{commit}}", check=False)
        return result.stdout.strip() if result.ok else None

    def current_branch(self) -> str:
        return self._run("rev-parse", "--abbrev-ref", "HEAD").stdout.strip()

    def status_porcelain(self) -> str:
        return self._run("status", "--porcelain", "--untracked-files=no").stdout

    def dirty_paths(self) -> list[str]:
        return parse_dirty(self.status_porcelain())

    def remotes(self) -> list[str]:
        return self._run("remote").stdout.split()

    def remote_sha(self, remote: str, branch: str) -> str | None:
        """The commit ``remote`` has for ``branch`` (`git ls-remote`), None when it has none."""
        result = self._run("ls-remote", END_OF_OPTIONS, remote,
                           f"refs/heads/{self.check_branch(branch)}")
        first = result.stdout.split()
        return first[0] if first else None

    def fetch(self, remote: str, branch: str) -> proc.Result:
        argv = fetch_argv(self.repo, remote, self.check_branch(branch))
        return self.runner(argv, timeout=self.timeout)

    def divergence(self, remote: str, branch: str) -> Divergence:
        result = self._run("rev-list", "--left-right", "--count", END_OF_OPTIONS,
                           f"HEAD...{remote}/{self.check_branch(branch)}")
        return parse_left_right(result.stdout)

    def switch(self, branch: str) -> proc.Result:
        # `git switch B` creates B tracking <remote>/B when only the remote branch exists.
        return self.runner(switch_argv(self.repo, self.check_branch(branch)),
                           timeout=self.timeout)

    def merge_ff_only(self, remote: str, branch: str) -> proc.Result:
        argv = merge_ff_only_argv(self.repo, remote, self.check_branch(branch))
        return self.runner(argv, timeout=self.timeout)

    def init(self, branch: str = "main") -> None:
        self.runner(["git", "init", "-q", "-b", self.check_branch(branch), "--", str(self.repo)],
                    timeout=self.timeout)

    def commit_all(self, message: str) -> None:
        self._run("add", "-A")
        self._run(
            "-c", "user.name=vmkeeper", "-c", "user.email=vmkeeper@localhost",
            "commit", "-q", "--allow-empty", "-m", message,
        )

    def archive_to(self, ref: str, destination_tar: Path, *paths: str) -> None:
        self.runner(archive_argv(self.repo, ref, destination_tar, *paths), timeout=self.timeout)
