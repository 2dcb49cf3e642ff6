"""The build half of a deploy (runbook steps 2–6): archive, env files, install, build, clean."""

from __future__ import annotations

import shutil
import tarfile
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

from vmkeeper import proc
from vmkeeper.adapters.git import Git
from vmkeeper.settings import Settings

BUILD_ENV = {"NEXT_TELEMETRY_DISABLED": "1", "NODE_ENV": "production"}


def archive_frontend(settings: Settings, ref: str, release_dir: Path) -> Path:
    """Step 2: ``git archive`` the frontend of ``ref`` into ``release_dir``; return the app dir."""
    git = Git(settings.workspace.path, timeout=settings.releases.git_timeout_s)
    frontend = settings.workspace.frontend_dir
    # The deploy creates the directory first (with its "building" record); the sandbox does not.
    release_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=release_dir.parent, prefix=".archive-") as scratch:
        tar_path = Path(scratch) / "head.tar"
        git.archive_to(ref, tar_path, frontend)
        with tarfile.open(tar_path) as archive:
            archive.extractall(release_dir, filter="data")
    return release_dir / frontend


def copy_env_files(settings: Settings, app_dir: Path) -> list[str]:
    """Step 3: copy the env files that exist in the live workspace, keeping their modes."""
    copied = []
    source_dir = settings.frontend_workspace
    for name in settings.releases.env_files:
        source = source_dir / name
        if source.is_file():
            shutil.copy2(source, app_dir / name)
            copied.append(name)
    return copied


OnLine = Callable[[str], None]  # each line npm or the build prints, as it prints it


def run_step(
    settings: Settings, argv: list[str], app_dir: Path, timeout: float,
    env: Mapping[str, str] | None = None, on_line: OnLine | None = None,
) -> proc.Result:
    """Steps 4 and 5 at lower CPU and IO priority, so the live frontend keeps answering."""
    full_env = dict(BUILD_ENV)
    full_env.update(env or {})
    return proc.run(argv, timeout=timeout, cwd=app_dir, env=full_env, nice=settings.releases.nice,
                    on_line=on_line)


def install(
    settings: Settings, app_dir: Path, env: Mapping[str, str] | None = None,
    on_line: OnLine | None = None,
) -> proc.Result:
    # npm ci needs devDependencies (next's build toolchain): not NODE_ENV=production here.
    return run_step(
        settings, settings.releases.install_command, app_dir,
        settings.releases.install_timeout_s, env={**(env or {}), "NODE_ENV": "development"},
        on_line=on_line,
    )


def build(settings: Settings, app_dir: Path, env: Mapping[str, str] | None = None,
          on_line: OnLine | None = None) -> proc.Result:
    return run_step(
        settings, settings.releases.build_command, app_dir, settings.releases.build_timeout_s,
        env=env, on_line=on_line,
    )


def remove_caches(settings: Settings, app_dir: Path) -> list[str]:
    """Step 6: remove non-runtime build caches (`.next`, `.turbo`, `build/cache`)."""
    removed = []
    for relative in settings.releases.remove_paths:
        target = (app_dir / relative).resolve()
        if app_dir.resolve() not in target.parents:
            continue  # a setting must never point a removal outside the release
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
            removed.append(relative)
        elif target.exists() or target.is_symlink():
            target.unlink()
            removed.append(relative)
    return removed


def has_build_output(settings: Settings, app_dir: Path) -> bool:
    output = app_dir / settings.releases.build_output
    return output.is_dir() and any(output.iterdir())
