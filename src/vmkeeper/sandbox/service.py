"""`sandbox up | down | status`: build, run and stop the standard VM on loopback.

Each step of ``up`` checks before it acts, so ``up`` on a running sandbox changes nothing; a
failing step stops what this run started and raises SandboxError naming the step.

The parts around the steps live beside it: the daemons outside PM2 (agent_proc.py), Apache
(apache.py), the teardown (teardown.py, re-exported here), where things live (layout.py).
"""

from __future__ import annotations

import json
import secrets
import shlex
import shutil
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from vmkeeper import proc
from vmkeeper.adapters import host_commands, http
from vmkeeper.adapters.git import Git
from vmkeeper.adapters.pm2 import Pm2, Pm2App
from vmkeeper.atomic import write_atomic
from vmkeeper.errors import SandboxError, VmkeeperError
from vmkeeper.health.service import run_status
from vmkeeper.progress import Phase, Progress, ProgressEvent, note, silent
from vmkeeper.releases import activation, build, deploy, store
from vmkeeper.releases.results import STEP_TITLES, STEPS
from vmkeeper.sandbox import agent_proc
from vmkeeper.sandbox.apache import ensure_apache, ensure_proxy
from vmkeeper.sandbox.layout import ASSETS, PLANTED_SECRETS, Layout
from vmkeeper.sandbox.layout import apache_for as apache_for
from vmkeeper.sandbox.layout import pm2_for as pm2_for
from vmkeeper.sandbox.teardown import down as down
from vmkeeper.sandbox.teardown import sandbox_processes as sandbox_processes
from vmkeeper.settings import Settings, load_settings


@dataclass(frozen=True)
class AppState:
    name: str
    status: str
    pid: int | None
    port: int | None


@dataclass(frozen=True)
class SandboxStatus:
    dir: Path
    config: Path
    apps: list[AppState]
    urls: dict[str, str]
    apache_pid: int | None
    pm2_daemon_pid: int | None
    active_release: str | None
    steps: list[str] = field(default_factory=list)

    @property
    def running(self) -> bool:
        return bool(self.apache_pid and self.pm2_daemon_pid)


def toml_text(layout: Layout, apache_binary: str) -> str:
    p = layout.ports

    def q(value: object) -> str:
        return json.dumps(str(value))

    graceful = apache_for(layout, apache_binary).graceful_argv()

    return f"""# vmkeeper settings for the sandbox in {layout.dir}
# (written by `vmkeeper sandbox up`).
public_url = {q(f"http://127.0.0.1:{p.proxy}")}
state_dir = {q(layout.state)}
log_dir = {q(layout.logs)}

[workspace]
path = {q(layout.workspace)}

[releases]
root = {q(layout.releases)}
spare_port = {p.frontend_spare}

[apps.frontend]
port = {p.frontend}

[apps.backend]
port = {p.backend}

[apps.telemetry]
port = {p.telemetry_grpc}
extra_ports = [{p.telemetry_http}]

[apps.media]
port = {p.media}

[proxy]
port = {p.proxy}
error_log = {q(layout.apache_error_log)}
config = {q(layout.apache_config)}
bin = {q(apache_binary)}
frontend_include = {q(layout.apache_frontend_include)}
graceful_command = {json.dumps(graceful)}

[pm2]
bin = {q(layout.pm2_bin)}
home = {q(layout.pm2_home)}

[media]
storage_root = {q(layout.uploads)}
token = {q(media_token(layout))}

[agent]
port = {p.agent}
webhook_secret = {q(agent_proc.webhook_secret(layout))}

[telemetry]
otlp_endpoint = {q(f"http://127.0.0.1:{p.telemetry_http}")}
environment = "sandbox"
"""


def media_token(layout: Layout) -> str:
    """The media service's bearer token: made once, kept, so running apps keep matching it."""
    path = layout.state / "media.token"
    if not path.exists():
        layout.state.mkdir(parents=True, exist_ok=True)
        write_atomic(path, secrets.token_urlsafe(24))  # 0600 from the start: it is a secret
    return path.read_text().strip()


def sandbox_settings(layout: Layout) -> Settings:
    # The sandbox's own file, read without the caller's environment: a FRONT_PORT or PORT
    # exported in the operator's shell must not move the sandbox's apps.
    return load_settings(layout.config, env={}).settings


class _Up:
    """One run of ``sandbox up``: its steps and what it started (to undo on failure)."""

    def __init__(self, layout: Layout, progress: Progress, watch: bool = True) -> None:
        self.layout = layout
        self.progress = progress
        self.watch = watch
        self.started_pm2 = False
        self.started_apache = False
        self.apache_binary = ""
        self.steps: list[str] = []

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        started = time.monotonic()
        self.progress(ProgressEvent(f"{name}…", Phase.STARTED, name))
        try:
            yield
        except VmkeeperError as error:
            raise SandboxError(f"Sandbox step '{name}' failed: {error}") from None
        except OSError as error:
            raise SandboxError(f"Sandbox step '{name}' failed: {error}") from None
        seconds = time.monotonic() - started
        self.steps.append(f"{name} ({seconds:.1f} s)")
        self.progress(ProgressEvent(f"{name}: done in {seconds:.1f} s", Phase.DONE, name,
                                    seconds=seconds))

    def run(self) -> SandboxStatus:
        layout = self.layout
        layout.dir.mkdir(parents=True, exist_ok=True)
        layout.marker.write_text("vmkeeper sandbox\n")
        try:
            with self.step("check Node.js"):
                check_node()
            with self.step("find Apache"):
                self.apache_binary = ensure_apache(self.progress)
            with self.step("install PM2 from the npm registry"):
                ensure_pm2(layout)
            with self.step("create the workspace (git)"):
                ensure_workspace(layout)
            with self.step("write vmkeeper.toml"):
                layout.config.write_text(toml_text(layout, self.apache_binary))
                for folder in (layout.releases, layout.state, layout.logs, layout.uploads):
                    folder.mkdir(parents=True, exist_ok=True)
            settings = sandbox_settings(layout)
            pm2 = pm2_for(layout)
            with self.step("start the PM2 apps"):
                self.started_pm2 = pm2.daemon_pid() is None
                ensure_apps(layout, settings, pm2)
            with self.step("start Apache"):
                self.started_apache = apache_for(layout, self.apache_binary).pid() is None
                ensure_proxy(layout, settings, self.apache_binary)
            with self.step("deploy the frontend (the runbook's eight steps)"):
                ensure_frontend(settings, pm2, self.progress)
            with self.step("wait for the site through Apache"):
                wait_for_site(settings)
            with self.step("start the agent (outside PM2)"):
                agent_proc.start(layout)
            if self.watch:
                with self.step("start the watcher (outside PM2)"):
                    agent_proc.start_watcher(layout)
        except BaseException:
            self.undo()
            raise
        return status(layout, steps=self.steps)

    def undo(self) -> None:
        agent_proc.stop(self.layout, "watch")
        agent_proc.stop(self.layout)
        if self.started_apache and self.apache_binary:
            apache_for(self.layout, self.apache_binary).stop()
        if self.started_pm2 and self.layout.pm2_bin.exists():
            pm2_for(self.layout).kill()


def up(layout: Layout, progress: Progress = silent, *, watch: bool = True) -> SandboxStatus:
    """``watch``: also start `vmkeeper watch` (the shared test sandbox does not: a watcher
    healing faults other tests inject on purpose would race them)."""
    return _Up(layout, progress, watch).run()


def check_node(required_major: int = 20) -> str:
    version = host_commands.node_version(timeout=10)
    if host_commands.node_major(version) != required_major:
        raise SandboxError(
            f"Node.js {version} found; the standard VM runs Node {required_major}.x: "
            f"install Node {required_major}."
        )
    return version


def ensure_pm2(layout: Layout) -> None:
    if layout.pm2_bin.exists():
        return
    layout.tools.mkdir(parents=True, exist_ok=True)
    for name in ("package.json", "package-lock.json"):
        shutil.copy2(ASSETS / "tools" / name, layout.tools / name)
    proc.run(["npm", "ci", "--no-audit", "--no-fund"], timeout=600, cwd=layout.tools)


WORKSPACE_GITIGNORE = "node_modules/\nbuild/\n.next/\n.turbo/\n.env*\nuploads/\n"


def ensure_workspace(layout: Layout) -> None:
    workspace = layout.workspace
    if (workspace / ".git").is_dir():
        return
    shutil.copytree(
        ASSETS / "workspace", workspace,
        ignore=shutil.ignore_patterns("node_modules", "build", ".next"),
        dirs_exist_ok=True,
    )
    (workspace / ".gitignore").write_text(WORKSPACE_GITIGNORE)
    git = Git(workspace)
    git.init()
    git.commit_all("sandbox: the standard VM's workspace")
    # A bare "origin" beside it, so `vmkeeper deploy` can fetch and fast-forward as on the VM.
    origin = layout.dir / "origin.git"
    proc.run(["git", "clone", "-q", "--bare", str(workspace), str(origin)], timeout=60)
    proc.run(["git", "-C", str(workspace), "remote", "add", "origin", str(origin)], timeout=30)
    proc.run(["git", "-C", str(workspace), "fetch", "-q", "origin"], timeout=60)
    proc.run(["git", "-C", str(workspace), "branch", "-q", "--set-upstream-to=origin/main"],
             timeout=30)
    # Env files live in the live workspace only (never in git): the deploy copies them.
    env_file = workspace / "frontend" / ".env.production"
    env_file.write_text(
        f"BACKEND_URL=http://127.0.0.1:{layout.ports.proxy}\n"
        f"NEXTAUTH_SECRET={PLANTED_SECRETS['JWT_SECRET']}\n"
    )
    env_file.chmod(0o600)


def ensure_frontend(settings: Settings, pm2: Pm2, progress: Progress = silent) -> None:
    """`frontend-dev` serving from a release: left as it is, restarted from the newest built
    release (after `sandbox down`), or else deployed by the real pipeline, as on the VM."""
    frontend = settings.apps.frontend
    live = pm2.app(frontend.name)
    root, frontend_dir = settings.releases.root, settings.workspace.frontend_dir
    if live and live.online and store.release_containing(root, live.cwd, frontend_dir):
        return
    for release in store.list_releases(root):
        if store.state_of(release) is store.ReleaseState.GOOD and \
                build.has_build_output(settings, release.app_dir(frontend_dir)):
            activation.start_frontend(settings, pm2, activation.Target(
                release.app_dir(frontend_dir), release.id))
            pm2.save(force=True)
            return
    def report(event: ProgressEvent) -> None:
        if event.step is not None and event.phase in (Phase.DONE, Phase.FAILED):
            detail = f": {event.message}" if event.message else ""
            note(progress, f"  {event.index}/{len(STEPS)} "
                 f"{STEP_TITLES.get(event.step, event.step)} {event.phase.value} "
                 f"({event.seconds or 0:.1f} s){detail}")

    result = deploy.deploy(settings, pm2=pm2, progress=report)
    if not result.ok:
        raise SandboxError(
            f"the first deploy failed at {result.failed_step or 'an unknown step'}: {result.error}"
        )


def app_env(layout: Layout, settings: Settings) -> dict[str, str]:
    """The environment PM2 records for every app: the VM's shell, secrets included."""
    env = dict(PLANTED_SECRETS)
    env.update(
        {
            "BACKEND_URL": f"http://127.0.0.1:{layout.ports.proxy}",
            "BACKEND_PORT": str(settings.apps.backend.port),
            "DATABASE_URL": f"postgres://app:{PLANTED_SECRETS['DB_PASSWORD']}@127.0.0.1:5432/app",
            "NEXT_TELEMETRY_DISABLED": "1",
            # The backend hands reversals to the media job API (issue 7) with this token: the
            # agent's /v1/media, one service on the VM (issue 13).
            "MEDIA_URL": settings.media_url(),
            "MEDIA_TOKEN": settings.media.token or "",
        }
    )
    return env


def ensure_apps(layout: Layout, settings: Settings, pm2: Pm2) -> None:
    """The backend, telemetry and executor apps (the frontend is deployed). The media job API
    is the agent's (started after the deploy): a media app an older sandbox left is removed."""
    apps = {app.name: app for app in pm2.jlist()}
    env = app_env(layout, settings)
    backend = settings.apps.backend
    workspace = layout.workspace
    if not _online(apps, backend.name):
        pm2.delete(backend.name, check=False)
        pm2.start_npm(
            backend.name, cwd=workspace / "backend", script=backend.start_script or "start",
            env={**env, **backend.env, "PORT": str(backend.port)},
        )
    telemetry = settings.apps.telemetry
    old_stand_in = str(getattr(apps.get(telemetry.name), "exec_path", "")).endswith(".js")
    if not _online(apps, telemetry.name) or old_stand_in:  # an older sandbox's node stand-in
        pm2.delete(telemetry.name, check=False)
        # The OTLP receiver that stores what it gets (the Collector is in no registry here).
        pm2.start_file(
            telemetry.name, telemetry_launcher(layout), cwd=layout.dir,
            env={**env, "OTLP_GRPC_PORT": str(layout.ports.telemetry_grpc),
                 "OTLP_HTTP_PORT": str(layout.ports.telemetry_http),
                 "OTLP_STORE": str(telemetry_store(layout))},
        )
    executor = settings.apps.executor
    if not _online(apps, executor.name):
        pm2.delete(executor.name, check=False)
        pm2.start_file(
            executor.name, workspace / "executor" / "executor.js", cwd=workspace / "executor",
            env=env,
        )
    if settings.apps.media.name in apps:
        pm2.delete(settings.apps.media.name, check=False)
        (layout.dir / "media-service.sh").unlink(missing_ok=True)
    pm2.save(force=True)


def _launcher(layout: Layout, name: str, argv: list[str]) -> Path:
    """A Python program for PM2 (whose start takes a script, not an argv): exec, so PM2
    watches the program's own pid."""
    script = layout.dir / name
    script.write_text("#!/bin/sh\nexec " + shlex.join(argv) + "\n")
    script.chmod(0o755)
    return script


def telemetry_launcher(layout: Layout) -> Path:
    """fl-telemetry: :mod:`vmkeeper.telemetry.receiver` (ports and store from its env)."""
    return _launcher(layout, "telemetry.sh",
                     [sys.executable, "-m", "vmkeeper.telemetry.receiver"])


def telemetry_store(layout: Layout) -> Path:
    """Where fl-telemetry keeps what it received: ``<signal>.jsonl``, OTLP JSON per line."""
    return layout.dir / "telemetry"


def _online(apps: Mapping[str, Pm2App], name: str) -> bool:
    app = apps.get(name)
    return app is not None and app.online


def wait_for_site(settings: Settings, timeout: float = 60) -> None:
    """The site through Apache and the API answer as the runbook's health says, or raise."""
    ready = http.wait_until_answering({
        settings.public_url + "/": 200,
        f"http://127.0.0.1:{settings.apps.backend.port}/api/auth/me": 401,
    }, timeout=timeout, interval=0.5)
    if not ready.ok:
        raise SandboxError(f"the site did not come up within {timeout:g} s: {ready.last}")


def status(layout: Layout, steps: list[str] | None = None) -> SandboxStatus:
    if not layout.config.exists():
        raise SandboxError(
            f"No sandbox in {layout.dir}: run `vmkeeper sandbox up --dir {layout.dir}` first."
        )
    settings = sandbox_settings(layout)
    # The same view as `vmkeeper status` (never starts a PM2 daemon to look).
    report = run_status(settings, pm2_for(layout))
    apps = [AppState(app.name, app.status, app.pid, app.ports[0] if app.ports else None)
            for app in report.apps if app.status not in ("not running", "missing")]
    apache = apache_for(layout, settings.proxy.bin)
    return SandboxStatus(
        dir=layout.dir,
        config=layout.config,
        apps=apps,
        urls={
            "site": settings.public_url + "/",
            "frontend": f"http://127.0.0.1:{settings.apps.frontend.port}/",
            "api": f"http://127.0.0.1:{settings.apps.backend.port}/api/auth/me",
            "telemetry": f"http://127.0.0.1:{layout.ports.telemetry_http}/",
        },
        apache_pid=apache.pid(),
        pm2_daemon_pid=report.pm2_daemon_pid,
        active_release=report.active_release,
        steps=steps or [],
    )


def base_port_of(directory: Path) -> int:
    """The base port a sandbox was brought up with (read back from its vmkeeper.toml)."""
    layout = Layout.at(directory)
    if not layout.config.exists():
        return layout.ports.base
    settings = load_settings(layout.config, env={}).settings
    return settings.proxy.port - 80
