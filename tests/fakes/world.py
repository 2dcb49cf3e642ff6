"""A small fake VM: the fake PM2, what HTTP answers on its ports, Apache up or down, a fake
clock, retained releases on disk, and health observed from that state through the real checks.

The site answers from PM2's state, as the real one does: an online app answers on the port its
env names (FRONT_PORT, PORT), the proxy answers what the frontend answers or Apache's own 503.
An app whose directory is in ``hangs``, or holds a file NEVER_READY (as the sandbox's sample
app reads it), starts but never answers: a release that hangs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from tests.fakes.pm2 import FakePm2
from tests.support.clock import FakeClock
from vmkeeper import proc
from vmkeeper.adapters import apache, host, http
from vmkeeper.adapters.pm2 import Pm2, Pm2App
from vmkeeper.errors import VmkeeperError
from vmkeeper.gather import Got
from vmkeeper.health import checks
from vmkeeper.health.facts import Facts, Pm2Snapshot, route
from vmkeeper.health.model import HealthReport
from vmkeeper.health.service import active_release_of, report_from_checks
from vmkeeper.releases import store
from vmkeeper.releases.activation import DeleteStart, Target
from vmkeeper.releases.switch import Switcher
from vmkeeper.settings import Settings

PROXY_PORT = 8080
APACHE_503 = "<title>503 Service Unavailable</title> Service Unavailable"


def fake_settings(tmp: Path, **health: object) -> Settings:
    data = {
        "public_url": f"http://127.0.0.1:{PROXY_PORT}",
        "state_dir": str(tmp / "state"), "log_dir": str(tmp / "logs"),
        "workspace": {"path": str(tmp / "workspace")},
        "releases": {"root": str(tmp / "releases"), "ready_timeout_s": 30,
                     "install_command": ["true"],
                     "build_command": ["sh", "-c", "mkdir -p build && echo ok > build/index"],
                     "disk_margin_mb": 0},
        "proxy": {"port": PROXY_PORT, "config": str(tmp / "apache2.conf"),
                  "frontend_include": str(tmp / "apache" / "vmkeeper-frontend.conf"),
                  "graceful_command": ["apachectl", "graceful"]},
        "pm2": {"home": str(tmp / "pm2"), "bin": "pm2"},
        "health": {"supervisor": "pm2", **health},
    }
    return Settings.model_validate(data)


@dataclass
class FakeVm:
    settings: Settings
    pm2_state: FakePm2
    clock: FakeClock = field(default_factory=FakeClock)
    hangs: set[Path] = field(default_factory=set)
    apache_up: bool = True

    @classmethod
    def at(cls, tmp: Path, **health: object) -> FakeVm:
        settings = fake_settings(tmp, **health)
        return cls(settings, FakePm2(settings.pm2.home))

    @classmethod
    def ready_to_deploy(cls, tmp: Path) -> FakeVm:
        """A world with a git workspace (and its remote) and the three other apps online."""
        world = cls.at(tmp)
        make_workspace(world.settings)
        world.run_other_apps()
        return world

    # --- the parts vmkeeper is given ---------------------------------------------------------

    @property
    def pm2(self) -> Pm2:
        return Pm2(bin="pm2", home=self.settings.pm2.home, timeout=5, runner=self.pm2_state,
                   daemon_list=None)

    def switcher(self) -> Switcher:
        return Switcher(self.settings, self.pm2, DeleteStart(self.settings, self.pm2,
                                                             runner=self.pm2_state),
                        probe=self.probe, clock=self.clock, sleep=self.clock.sleep)

    def probe(self, url: str, *, timeout: float) -> http.Probe:
        port = urlsplit(url).port or 80
        if port == PROXY_PORT:
            if not self.apache_up:
                return http.Probe(url, None, None, 0.001, http.ProbeError.REFUSED, "refused")
            inner = self._app_answer(self.routed_port(), url)
            if inner is None or inner >= 500:
                return http.Probe(url, 503, "Apache/2.4.62", 0.001, body_head=APACHE_503)
            return http.Probe(url, inner, "Apache/2.4.62", 0.001)
        status = self._app_answer(port, url)
        if status is None:
            return http.Probe(url, None, None, 0.001, http.ProbeError.REFUSED, "refused")
        if status == 0:
            return http.Probe(url, None, None, timeout, http.ProbeError.TIMEOUT, "no answer")
        return http.Probe(url, status, None, 0.001)

    def routed_port(self) -> int | None:
        """Where Apache sends `/`: the zero-downtime switch's map, else FRONT_PORT."""
        path = apache.map_path(self.settings.proxy.frontend_include)
        routed = apache.map_port(path.read_text()) if path.exists() else None
        return routed or self.settings.apps.frontend.port

    def _app_answer(self, port: int | None, url: str) -> int | None:
        """None: nothing listens; 0: it listens but never answers; else the status."""
        for app in self.pm2_state.apps.values():
            if app.online and port is not None and str(port) in (
                    app.env.get("FRONT_PORT"), app.env.get("PORT")):
                if app.cwd in self.hangs or (app.cwd / "NEVER_READY").exists():
                    return 0
                return 401 if urlsplit(url).path.startswith("/api/") else 200
        return None

    # --- building the VM ----------------------------------------------------------------------

    def release(self, sha: str, *, stamp: str = "20260101T000000Z",
                state: store.ReleaseState = store.ReleaseState.GOOD) -> Target:
        """A built release on disk (its build output present), as a deploy leaves it."""
        release_id = f"{stamp}-{sha}"
        path = self.settings.releases.root / release_id
        app_dir = path / self.settings.workspace.frontend_dir
        (app_dir / "build").mkdir(parents=True)
        (app_dir / "build" / "index").write_text(sha)
        (app_dir / "package.json").write_text("{}")
        store.write_meta(path, store.ReleaseMeta(release_id, sha, "main", state))
        return Target(app_dir, release_id, {"RELEASE_ID": release_id})

    def run_frontend(self, target: Target) -> None:
        """frontend-dev serving from ``target``, saved: the state a good deploy leaves."""
        DeleteStart(self.settings, self.pm2, runner=self.pm2_state).activate(target)
        self.pm2.save(force=True)

    def run_other_apps(self) -> None:
        """The runbook's backend, telemetry and executor, started and saved."""
        base = self.settings.workspace.path
        for role in ("backend", "telemetry", "executor"):
            (base / role).mkdir(parents=True, exist_ok=True)
        apps = self.settings.apps
        self.pm2.start_npm(apps.backend.name, cwd=base / "backend", script="start",
                           env={"PORT": str(apps.backend.port), "NODE_ENV": "dev_stage"})
        self.pm2.start_file(apps.telemetry.name, base / "telemetry" / "telemetry.js",
                            cwd=base / "telemetry")
        self.pm2.start_file(apps.executor.name, base / "executor" / "executor.js",
                            cwd=base / "executor")
        self.pm2.save(force=True)

    # --- health, observed from this state through the real checks -----------------------------

    def facts(self) -> Facts:
        state = self.pm2_state
        listeners = [host.Listener("127.0.0.1", PROXY_PORT, 4242, "apache2")] \
            if self.apache_up else []
        ports = {app.name: [int(p) for p in (app.env.get("FRONT_PORT"), app.env.get("PORT"))
                            if p] for app in state.apps.values()}
        ports[self.settings.apps.telemetry.name] = [4317, 4318]
        for app in state.apps.values():
            if app.online:
                listeners += [host.Listener("127.0.0.1", port, app.pid, "node")
                              for port in ports.get(app.name, [])]
        pm2 = self.pm2
        snapshot = Pm2Snapshot(None, None)
        if state.daemon_running:
            apps = pm2.jlist()
            snapshot = Pm2Snapshot(4242, apps, {a.name: {a.pid} for a in apps if a.pid})
        try:
            dump: Got[list[Pm2App]] = Got(pm2.read_dump())
        except (OSError, VmkeeperError) as error:
            dump = Got(None, str(error))
        probes = {"frontend": Got(self.probe(f"http://127.0.0.1:{self.settings.apps.frontend.port}/",
                                             timeout=1)),
                  "backend": Got(self.probe(
                      f"http://127.0.0.1:{self.settings.apps.backend.port}/api/auth/me",
                      timeout=1)),
                  "public": Got(self.probe(self.settings.public_url + "/", timeout=1))}
        return Facts(
            filesystems=Got([host.FsUsage(Path("/"), "/", 100 * 2**30, 50 * 2**30, 1000, 900, 1)]),
            memory=Got(host.MemoryUsage(4 * 2**30, 2 * 2**30, 0, 0)),
            listeners=Got(listeners), probes=probes, pm2=Got(snapshot), unit=None,
            dump=dump,
            node_version=Got("v20.20.2"),
            proxy_config=Got(["ProxyPass / http://127.0.0.1:3001/ retry=0"]),
            previous_restarts={}, now=time.time(), route=Got(route(self.settings)),
        )

    def health(self) -> HealthReport:
        facts = self.facts()
        found = checks.evaluate(facts, self.settings, "pm2")
        return report_from_checks(found, 0.01, "pm2",
                                  active_release=active_release_of(self.settings, facts))



def git(repo: Path, *args: str) -> str:
    identity = ["-c", "user.email=test@example.com", "-c", "user.name=test",
                "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"]
    return proc.run(["git", *identity, "-C", str(repo), *args], timeout=30).stdout.strip()


def make_workspace(settings: Settings) -> Path:
    """The live workspace: a clone of a bare origin, with a frontend, on main."""
    workspace = settings.workspace.path
    origin = workspace.parent / "origin.git"
    origin.mkdir(parents=True)
    git(origin, "init", "-q", "--bare")
    workspace.mkdir(parents=True)
    git(workspace, "init", "-q")
    git(workspace, "remote", "add", "origin", str(origin))
    (workspace / "frontend").mkdir()
    (workspace / "frontend" / "package.json").write_text('{"name": "frontend"}\n')
    commit(workspace, "first")
    git(workspace, "branch", "-q", "--set-upstream-to=origin/main")
    return workspace


def commit(workspace: Path, message: str, files: dict[str, str | None] | None = None) -> str:
    """A new commit on main, pushed to origin (what a developer's push does); ``files`` are
    written (None: removed) in the frontend first."""
    (workspace / "frontend" / "VERSION").write_text(message + "\n")
    for name, text in (files or {}).items():
        path = workspace / "frontend" / name
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.write_text(text)
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", message)
    git(workspace, "push", "-q", "origin", "main")
    return git(workspace, "rev-parse", "HEAD")
