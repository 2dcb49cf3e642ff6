"""Deploy inputs against real git in temp dirs: branch names by git's own rule, every ref after
an end-of-options marker, and a dry-run plan whose lines are safe to paste into a shell."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliRun
from vmkeeper import proc
from vmkeeper.adapters import git as git_adapter
from vmkeeper.errors import UsageError

GIT_ID = ["-c", "user.name=test", "-c", "user.email=test@localhost"]


def _git(repo: Path, *args: str) -> str:
    return proc.run(["git", "-C", str(repo), *GIT_ID, *args], timeout=30).stdout.strip()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A clone of an origin with branches main and feat, on main, with a frontend/ folder."""
    origin, workspace = tmp_path / "origin", tmp_path / "workspace"
    proc.run(["git", "init", "-q", "-b", "main", str(origin)], timeout=30)
    (origin / "frontend").mkdir()
    (origin / "frontend" / "package.json").write_text("{}\n")
    _git(origin, "add", "-A")
    _git(origin, "commit", "-q", "-m", "first")
    _git(origin, "branch", "feat")
    proc.run(["git", "clone", "-q", str(origin), str(workspace)], timeout=30)
    return workspace


@pytest.mark.parametrize("name", ["--detach", "--", "-b", "a b", "main..x", "HEAD", "x~1",
                                  "refs/heads/", "x.lock", "x@{1}", ""])
def test_check_branch_refuses_what_git_refuses(workspace: Path, name: str) -> None:
    with pytest.raises(UsageError, match="not a valid git branch name"):
        git_adapter.Git(workspace).check_branch(name)


def test_check_branch_refuses_a_name_git_would_rewrite(workspace: Path) -> None:
    # `@{-1}` is "the previous branch" to git: it would deploy a branch nobody named.
    _git(workspace, "switch", "-q", "-c", "other")
    _git(workspace, "switch", "-q", "main")
    with pytest.raises(UsageError):
        git_adapter.Git(workspace).check_branch("@{-1}")


def test_check_branch_keeps_valid_names(workspace: Path) -> None:
    for name in ("main", "feat", "release/2026-12", "x;rm"):
        assert git_adapter.Git(workspace).check_branch(name) == name


def test_switch_to_an_option_shaped_branch_leaves_the_workspace_on_its_branch(
    workspace: Path,
) -> None:
    with pytest.raises(UsageError):
        git_adapter.Git(workspace).switch("--detach")
    assert _git(workspace, "rev-parse", "--abbrev-ref", "HEAD") == "main"


def test_every_adapter_argv_ends_options_before_refs(workspace: Path, tmp_path: Path) -> None:
    git = git_adapter.Git(workspace)
    # An option-shaped remote reaches git as a remote name, not as --upload-pack.
    marker = tmp_path / "ran"
    with pytest.raises(proc.CommandFailed):
        git.fetch(f"--upload-pack=touch {marker}", "main")
    assert not marker.exists()
    # An option-shaped ref to archive is an object name, not a second -o.
    stolen = tmp_path / "elsewhere.tar"
    with pytest.raises(proc.CommandFailed, match="not a valid object name"):
        git.archive_to(f"--output={stolen}", tmp_path / "x.tar", "frontend")
    assert not stolen.exists()
    assert git.rev_parse("--all") is None
    # And the argv as built still work, each with its marker where that subcommand takes it.
    git.fetch("origin", "feat")
    git.switch("feat")
    assert git.current_branch() == "feat"
    assert git.divergence("origin", "feat") == git_adapter.Divergence(0, 0)
    git.merge_ff_only("origin", "feat")
    git.archive_to(git.head_sha(), tmp_path / "ok.tar", "frontend")
    assert (tmp_path / "ok.tar").stat().st_size > 0
    for argv, first_ref in ((git_adapter.fetch_argv(workspace, "o", "b"), "o"),
                            (git_adapter.switch_argv(workspace, "b"), "b"),
                            (git_adapter.merge_ff_only_argv(workspace, "o", "b"), "o/b")):
        assert argv.index("--") == argv.index(first_ref) - 1


def _deploy_flags(workspace: Path, tmp_path: Path) -> list[str]:
    return ["--set", f"workspace.path={workspace}", "--set", f"releases.root={tmp_path / 'rel'}",
            "--set", f"pm2.home={tmp_path / 'pm2'}"]


def test_deploy_refuses_an_option_shaped_branch_before_touching_git(
    cli: Callable[..., CliRun], workspace: Path, tmp_path: Path
) -> None:
    run = cli(*_deploy_flags(workspace, tmp_path), "deploy", "--branch=--detach", "--json")
    assert run.code == 2, run
    assert "'--detach' is not a valid git branch name" in run.stderr
    assert _git(workspace, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    assert not (tmp_path / "rel").exists()


def test_dry_run_plan_lines_are_one_command_each_when_pasted(
    cli: Callable[..., CliRun], workspace: Path, tmp_path: Path
) -> None:
    # `;` `$` `{` `}` are all allowed in a git branch name.
    hostile = "x;touch${IFS}PWNED;echo"
    run = cli(*_deploy_flags(workspace, tmp_path), "deploy", "--dry-run", "--branch", hostile,
              "--json")
    assert run.code == 0, run
    plan = json.loads(run.stdout)["plan"]
    pull = plan[0]["commands"]
    assert any(hostile in line for line in pull)
    paste_dir = tmp_path / "paste"
    paste_dir.mkdir()
    for line in pull:
        proc.run(["sh", "-c", line], timeout=30, cwd=paste_dir, check=False)
    assert not (paste_dir / "PWNED").exists()
    assert not (workspace / "PWNED").exists()
    assert _git(workspace, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    # The start line keeps its environment assignment as an assignment.
    switch_lines = next(step for step in plan if step["name"] == "switch")["commands"]
    assert any(" && FRONT_PORT=3001 " in line for line in switch_lines)
