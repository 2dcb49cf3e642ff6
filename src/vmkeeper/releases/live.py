"""Which release is live: PM2's `frontend-dev` cwd (the runbook's rule), and what dump.pm2 says.

They can disagree — a `pm2 start` without `pm2 save`, a deploy killed between the two — and a
reboot then resurrects the dump's release, not the live one. So both are read, and compared.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vmkeeper.adapters.pm2 import Pm2, Pm2App, Pm2OutputError, from_settings
from vmkeeper.releases import store
from vmkeeper.settings import Settings


def pm2_client(settings: Settings) -> Pm2:
    return from_settings(settings.pm2.bin, settings.pm2.home, settings.pm2.timeout_s)


@dataclass(frozen=True)
class LiveState:
    daemon_running: bool
    app: Pm2App | None
    active_id: str | None
    dump_app: Pm2App | None
    dump_id: str | None
    dump_error: str | None

    @property
    def active_dir(self) -> Path | None:
        return self.app.cwd if self.app else None

    def warnings(self, name: str) -> list[str]:
        found = []
        if not self.daemon_running:
            found.append("PM2 is not running: no release is live.")
        elif self.app is None:
            found.append(f"PM2 runs no app named {name}.")
        elif not self.app.online:
            found.append(f"{name} is {self.app.status}, not online.")
        if self.dump_error:
            found.append(self.dump_error)
        elif self.app is not None and _cwd(self.dump_app) != _cwd(self.app):
            found.append(
                f"dump.pm2 would resurrect {name} from {_cwd(self.dump_app) or 'nothing'}, but it "
                f"runs from {_cwd(self.app)}: a reboot would start a different release "
                "(run `pm2 save`)."
            )
        return found


def _cwd(app: Pm2App | None) -> Path | None:
    return app.cwd.resolve() if app is not None and app.cwd is not None else None


def read_live(settings: Settings, pm2: Pm2, *, start_daemon: bool = False) -> LiveState:
    """The live and the saved frontend. Never starts the PM2 daemon unless ``start_daemon``
    (every pm2 command would; a read-only `releases` must not)."""
    name = settings.apps.frontend.name
    root = settings.releases.root
    frontend_dir = settings.workspace.frontend_dir
    running = pm2.daemon_pid() is not None
    app = pm2.app(name) if (running or start_daemon) else None
    dump_app: Pm2App | None = None
    dump_error: str | None = None
    try:
        dump_app = next((a for a in pm2.read_dump() if a.name == name), None)
    except FileNotFoundError:
        dump_error = f"{pm2.dump_path} does not exist: a reboot would start no frontend."
    except (OSError, Pm2OutputError) as error:
        dump_error = f"{pm2.dump_path} cannot be read ({error})."
    return LiveState(
        daemon_running=running or start_daemon,
        app=app,
        active_id=store.release_containing(root, app.cwd if app else None, frontend_dir),
        dump_app=dump_app,
        dump_id=store.release_containing(root, dump_app.cwd if dump_app else None, frontend_dir),
        dump_error=dump_error,
    )


def dump_matches(settings: Settings, pm2: Pm2, app_dir: Path) -> tuple[bool, str]:
    """Does dump.pm2 start `frontend-dev` from ``app_dir`` with FRONT_PORT set?"""
    name = settings.apps.frontend.name
    try:
        entry = next((a for a in pm2.read_dump() if a.name == name), None)
    except (OSError, Pm2OutputError) as error:
        return False, f"{pm2.dump_path} cannot be read ({error})"
    if entry is None:
        return False, f"{pm2.dump_path} has no {name}"
    if _cwd(entry) != app_dir.resolve():
        return False, f"{pm2.dump_path} starts {name} from {entry.cwd}, not {app_dir}"
    port = entry.env_value("FRONT_PORT")
    if port != str(settings.apps.frontend.port):
        return False, f"{pm2.dump_path} has FRONT_PORT={port}, not {settings.apps.frontend.port}"
    return True, "dump.pm2 agrees"
