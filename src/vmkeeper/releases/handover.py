"""The zero-downtime switch: Apache hands the site from the running release to the new one.

The runbook's switch (`pm2 delete` + `pm2 start` on FRONT_PORT) leaves nothing behind Apache's
route while the new server starts (bench/deploy_switch.py: 69 of 1014 requests failed, a 3.6 s
gap). This one never routes Apache to a port with no server behind it, and ends exactly in the
runbook's state:

1. spare    start the new release as a temporary PM2 app (`frontend-dev-handover`) on the spare
            port; wait until it answers. A release that never answers stops here: nothing live
            has changed.
2. flip     point Apache at the spare port: rewrite the map its RewriteMap reads per request
            (no restart); requests already on the old server finish there.
3. drain    wait until no connection to FRONT_PORT remains. PM2 stops an app with SIGINT and
            SIGKILLs it 1.6 s later (kill_timeout); `next start` does close its server on SIGINT
            and waits for pending requests, but PM2's SIGKILL would cut a 3 s one — so nothing
            may still be running on the old server when it is stopped.
4. restart  the runbook's own `pm2 delete frontend-dev` + `FRONT_PORT=3001 pm2 start npm --name
            frontend-dev -- run start` from the new release; wait until it answers.
5. back     point the map at FRONT_PORT again.
6. retire   drain the spare port, delete the temporary app; the caller saves PM2.

Each step leaves one answering server behind Apache's route, so a run killed anywhere leaves the
site up; ``repair`` (run before every switch and deploy) finishes what such a run left.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from vmkeeper import proc
from vmkeeper.adapters import apache, host, http
from vmkeeper.adapters.pm2 import Pm2, Pm2App
from vmkeeper.atomic import write_atomic
from vmkeeper.errors import CommandError, DeployError
from vmkeeper.progress import Progress, note, silent
from vmkeeper.releases import store, testhook
from vmkeeper.releases.activation import DeleteStart, Target, frontend_env, start_frontend
from vmkeeper.settings import Settings

SUB_STEPS = ("spare", "flip", "drain", "restart", "back", "retire")
QUIET_S = 1.0  # no connection to a drained port for this long: Apache's old children are gone


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str


def available(settings: Settings) -> Availability:
    """Can this VM switch without downtime? Only if Apache's config carries the snippet."""
    include, config = settings.proxy.frontend_include, settings.proxy.config
    if not apache.includes(config, include):
        return Availability(False, (
            f"Apache's config ({config}) does not include {include}, so this switch is the "
            "runbook's (pm2 delete + start: requests fail while the new server starts); "
            "`vmkeeper doctor` prints the two lines to add"))
    return Availability(True, f"zero-downtime switch through {include}")


def temp_name(settings: Settings) -> str:
    return f"{settings.apps.frontend.name}-handover"


def static_dirs(settings: Settings) -> list[Path]:
    """Every retained release's build/static, newest first (skew protection)."""
    found = []
    for release in store.list_releases(settings.releases.root):
        folder = release.app_dir(settings.workspace.frontend_dir) / \
            settings.releases.build_output / "static"
        if folder.is_dir():
            found.append(folder)
    return found


def ensure_include(settings: Settings, runner: proc.Runner = proc.run) -> bool:
    """Write the include if it is missing or not what this vmkeeper writes, then `graceful`
    so Apache loads it; whether it had to. A config Apache refuses is taken back."""
    include = settings.proxy.frontend_include
    text = apache.render_frontend_include(
        include, settings.releases.root, [_port(settings), settings.releases.spare_port])
    before: str | None = None
    with contextlib.suppress(OSError):
        before = include.read_text()
    if before == text:
        return False
    if not apache.map_path(include).exists():
        write_map(settings, _port(settings))
    # 0644: Apache's parent reads it as root, but a non-root Apache (the sandbox) as itself.
    write_atomic(include, text, mode=0o644)
    try:
        apache.graceful(settings.proxy.graceful_command, timeout=30, runner=runner)
    except CommandError as error:
        if before is None:
            include.unlink(missing_ok=True)
        else:  # Apache kept the old config; keep the file agreeing with it
            write_atomic(include, before, mode=0o644)
        raise DeployError(f"Apache refused the switch's config ({error}); nothing changed in "
                          "what it serves") from None
    return True


def write_map(settings: Settings, port: int) -> None:
    """The map Apache reads per request: the port and every retained release's static folder.
    Apache notices a change by the file's mtime, so a new map never keeps the old one's."""
    path = apache.map_path(settings.proxy.frontend_include)
    path.parent.mkdir(parents=True, exist_ok=True)
    previous: int | None = None
    with contextlib.suppress(OSError):
        previous = path.stat().st_mtime_ns
    write_atomic(path, apache.render_frontend_map(
        port, static_dirs(settings), settings.releases.root), mode=0o644)
    if previous is not None and path.stat().st_mtime_ns <= previous:
        bumped = previous + 1_000_000
        os.utime(path, ns=(bumped, bumped))


def _port(settings: Settings) -> int:
    port = settings.apps.frontend.port
    assert port is not None
    return port


@dataclass
class Handover:
    settings: Settings
    pm2: Pm2
    progress: Progress = silent
    sleep: http.Sleep = time.sleep
    clock: http.Clock = time.monotonic
    probe: http.Prober = http.probe
    # Apache as seen by the switch: its graceful restart (through ``runner``, only to load a
    # new include) and open connections to a port (Apache's to an upstream). Fakes in the
    # fast tests.
    runner: proc.Runner = proc.run
    connections: Callable[[int], int] = host.connections_to
    notes: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def front_port(self) -> int:
        port = self.settings.apps.frontend.port
        assert port is not None
        return port

    @property
    def spare_port(self) -> int:
        return self.settings.releases.spare_port

    # --- Apache -------------------------------------------------------------------------------

    def routed_port(self) -> int | None:
        try:
            return apache.routed_port(self.settings.proxy.frontend_include)
        except OSError:
            return None

    def route(self, port: int) -> None:
        """Point Apache's `/` at ``port``: rewrite the map, which Apache rereads per request
        (no restart). The include itself is written, with one graceful, only when missing or
        changed (the first switch, an upgrade)."""
        ensure_include(self.settings, self.runner)
        write_map(self.settings, port)

    def drain(self, port: int) -> float:
        """Wait until no connection to ``port`` has been open for QUIET_S; seconds waited."""
        started = self.clock()
        limit = started + self.settings.proxy.drain_timeout_s
        quiet_since: float | None = None
        while True:
            now = self.clock()
            if self.connections(port):
                quiet_since = None
            elif quiet_since is None:
                quiet_since = now
            elif now - quiet_since >= QUIET_S:
                return now - started
            if now >= limit:
                self.notes.append(f"port {port} still had connections after "
                                  f"{self.settings.proxy.drain_timeout_s:g} s; stopped anyway")
                return now - started
            self.sleep(0.1)

    # --- PM2 ----------------------------------------------------------------------------------

    def _wait(self, port: int, name: str, app_dir: Path, timeout: float | None = None
              ) -> http.Readiness:
        """``port`` answers, and PM2 runs ``name`` online from ``app_dir``."""
        app = self.settings.apps.frontend

        def from_app_dir() -> str | None:
            running = self.pm2.app(name)
            if running is not None and running.online and running.cwd is not None \
                    and running.cwd.resolve() == app_dir.resolve():
                return None
            return f"PM2 shows {name} " + (
                "missing" if running is None else f"{running.status} in {running.cwd}")

        return http.wait_until_answering(
            {f"http://127.0.0.1:{port}{app.health_path or '/'}": app.expected_status or 200},
            timeout=timeout or self.settings.releases.ready_timeout_s, probe=self.probe,
            clock=self.clock, sleep=self.sleep, also=from_app_dir)

    def _start_spare(self, target: Target) -> None:
        name = temp_name(self.settings)
        env = {**frontend_env(self.settings, target.env), "FRONT_PORT": str(self.spare_port)}
        self.pm2.delete(name, check=False)
        self.pm2.start_npm(name, cwd=target.app_dir,
                           script=self.settings.apps.frontend.start_script or "start", env=env)
        ready = self._wait(self.spare_port, name, target.app_dir)
        if not ready.ok:
            self.pm2.delete(name, check=False)
            expected = self.settings.apps.frontend.expected_status or 200
            raise DeployError(
                f"did not answer {expected} on the spare port {self.spare_port} within "
                f"{ready.seconds:.0f} s (last: {ready.last}); nothing live changed")

    def _start_frontend(self, target: Target) -> bool:
        start_frontend(self.settings, self.pm2, target)
        ready = self._wait(self.front_port, self.settings.apps.frontend.name, target.app_dir)
        if not ready.ok:
            self.notes.append(f"{self.settings.apps.frontend.name} from {target.app_dir} did "
                              f"not answer on port {self.front_port} ({ready.last})")
        return ready.ok

    def _retire_spare(self) -> None:
        self.seconds["drain_spare"] = round(self.drain(self.spare_port), 3)
        self.pm2.delete(temp_name(self.settings), check=False)

    # --- the switch ---------------------------------------------------------------------------

    def _sub(self, name: str) -> None:
        testhook.pause_if_requested(f"switch/{name}")
        note(self.progress, f"zero-downtime switch: {name}")

    def activate(self, target: Target) -> None:
        """Hand the site to ``target``; raise DeployError with the previous release serving."""
        self.notes.clear()
        self.repair()
        old = self.pm2.app(self.settings.apps.frontend.name)
        if self._already_serving(old, target):
            return
        started = self.clock()
        self._sub("spare")
        self._start_spare(target)
        self._sub("flip")
        try:
            self.route(self.spare_port)
        except DeployError:
            self.pm2.delete(temp_name(self.settings), check=False)
            raise
        self._sub("drain")
        self.seconds["drain"] = round(self.drain(self.front_port), 3)
        self._sub("restart")
        if not self._start_frontend(target):
            self._restore(old)
            raise DeployError("the new release started on the spare port but not on "
                              f"{self.front_port}: " + "; ".join(self.notes))
        self._sub("back")
        self.route(self.front_port)
        self._sub("retire")
        self._retire_spare()
        self.seconds["total"] = round(self.clock() - started, 3)
        self.notes.append(
            f"zero-downtime switch in {self.seconds['total']:.1f} s (the old server drained "
            f"in {self.seconds['drain']:.1f} s)")

    def _already_serving(self, front: Pm2App | None, target: Target) -> bool:
        """The revert after a failure on the spare: the previous release never stopped."""
        if front is None or not front.online or front.cwd is None or \
                front.cwd.resolve() != target.app_dir.resolve() or \
                self.routed_port() != self.front_port:
            return False
        if not self._wait(self.front_port, front.name, target.app_dir, timeout=2).ok:
            return False
        self.notes.append(f"{target.label} was still serving on {self.front_port}")
        return True

    def stop(self) -> None:
        """Nothing to go back to: no frontend at all, and no temporary app either."""
        self.pm2.delete(temp_name(self.settings), check=False)
        self.pm2.delete(self.settings.apps.frontend.name, check=False)

    def recover(self) -> list[str]:
        return self.repair()

    def report(self) -> list[str]:
        return list(self.notes)

    def _restore(self, old: Pm2App | None) -> None:
        """The new release failed on FRONT_PORT while the spare serves it: start the old one
        there again (it answered before), route back, retire the spare."""
        if old is not None and old.cwd is not None and self._start_frontend(Target(old.cwd)):
            self.route(self.front_port)
            self._retire_spare()
            self.notes.append(f"{old.cwd} serves on {self.front_port} again")
        else:
            self.notes.append("the temporary app on the spare port keeps serving the site")

    # --- after a killed run -------------------------------------------------------------------

    def repair(self) -> list[str]:
        """Finish what a killed switch left: the runbook's app on FRONT_PORT, Apache routed to
        it, no temporary app. The release the site is served from stays the one served."""
        temp = self.pm2.app(temp_name(self.settings))
        routed = self.routed_port()
        if temp is None and routed == self.front_port:
            return []
        found: list[str] = []
        adopted = self._adopt_spare(temp, routed)
        if adopted:
            found.append(adopted)
        front = self.pm2.app(self.settings.apps.frontend.name)
        front_up = front is not None and front.online
        if temp is not None and temp.online and routed == self.spare_port and not front_up:
            self.notes.append(f"the temporary app {temp.name} keeps serving the site: "
                              f"{self.settings.apps.frontend.name} does not run")
            return found
        if routed != self.front_port:
            self.route(self.front_port)
            found.append(f"routed Apache to port {self.front_port}")
        if temp is not None:
            self._retire_spare()
            found.append(f"removed the temporary app {temp.name}")
        self.pm2.save(force=True)
        self.notes.extend(found)
        return found

    def _mark_good(self, app_dir: Path) -> None:
        root = self.settings.releases.root
        release_id = store.release_containing(root, app_dir, self.settings.workspace.frontend_dir)
        if release_id is not None:
            store.set_state(root / release_id, store.ReleaseState.GOOD)

    def _adopt_spare(self, temp: Pm2App | None, routed: int | None) -> str | None:
        """When the spare serves the site, its release is the one the site is on: start that
        release as the runbook's app on FRONT_PORT (unless it already runs there)."""
        if temp is None or not temp.online or temp.cwd is None:
            return None
        front = self.pm2.app(self.settings.apps.frontend.name)
        front_up = front is not None and front.online and front.cwd is not None
        if routed != self.spare_port and front_up:
            return None
        if front_up and front is not None and front.cwd is not None \
                and front.cwd.resolve() == temp.cwd.resolve():
            return None
        env = {k: v for k in ("RELEASE_ID", "GIT_SHA") if (v := temp.env_value(k)) is not None}
        if not self._start_frontend(Target(temp.cwd, None, env)):
            return None
        self._mark_good(temp.cwd)
        return (f"started {self.settings.apps.frontend.name} from {temp.cwd}, which the "
                "temporary app was serving")


@dataclass(frozen=True)
class RunbookSwitch:
    """The fallback on a VM whose Apache lacks the snippet: the runbook's delete+start, saying
    so (the deploy still counts the requests that fail)."""

    inner: DeleteStart
    reason: str

    def activate(self, target: Target) -> None:
        self.inner.activate(target)

    def stop(self) -> None:
        self.inner.stop()

    def recover(self) -> list[str]:
        return []

    def report(self) -> list[str]:
        return [self.reason]


def activation_for(settings: Settings, pm2: Pm2, progress: Progress = silent
                   ) -> Handover | RunbookSwitch:
    """The zero-downtime switch where Apache is ready for it, else the runbook's."""
    ready = available(settings)
    if ready.ok:
        return Handover(settings, pm2, progress)
    return RunbookSwitch(DeleteStart(settings, pm2), ready.reason)
