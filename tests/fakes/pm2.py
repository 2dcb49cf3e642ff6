"""A scripted stand-in of PM2's command line: a ``proc.Runner`` that keeps PM2's state.

It answers the argv vmkeeper's PM2 adapter builds (`jlist`, `start`, `delete`, `stop`,
`restart`, `save`, `resurrect`, `kill`, `--version`) the way PM2 6/7 does: `jlist` prints
entries in the real shape (copied from the recorded output in tests/data/pm2/, with this
fake's names, pids, cwds and env put in), `save` writes ``dump.pm2`` as PM2 writes it (its
``pm2_env`` objects without ``instances``/``pm_id``/``prev_restart_delay``, pretty-printed, the
old one kept as ``dump.pm2.bak``), and any command but `kill`/`--version` spawns the daemon and
writes ``pm2.pid`` (so "does the daemon run" is answered as for the real one). It also runs the
detached switch child (``python -m vmkeeper.releases.activation``) against itself.

Scripted faults: ``fail_start`` (cwds whose `pm2 start` exits 1), ``fail_save``, and
``crashing`` (apps that go to "errored" after every start or restart).
"""

from __future__ import annotations

import copy
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vmkeeper import proc
from vmkeeper.errors import CommandFailed
from vmkeeper.releases import activation

DATA = Path(__file__).parents[1] / "data" / "pm2"
# Pids no real process has (above the kernel's pid_max), so psutil finds no such process.
FIRST_PID = 9_000_000
_DUMP_DROPS = ("instances", "pm_id", "prev_restart_delay")


def _template() -> dict[str, Any]:
    recorded = json.loads((DATA / "jlist-healthy.json").read_text())
    entry = next(e for e in recorded if e["name"] == "frontend-dev")
    for key in [k for k in entry["pm2_env"] if k.isupper() or k in ("_", "unique_id")]:
        del entry["pm2_env"][key]
    return dict(entry)


TEMPLATE = _template()


@dataclass
class FakeApp:
    name: str
    cwd: Path
    env: dict[str, str]
    exec_path: str
    args: list[str]
    pm_id: int
    pid: int = 0
    status: str = "online"
    restarts: int = 0
    unstable_restarts: int = 0
    started_at_ms: int = 1_796_000_000_000

    @property
    def online(self) -> bool:
        return self.status == "online"


@dataclass
class FakePm2:
    """PM2's state under one PM2_HOME, changed only through the commands it is given."""

    home: Path
    bin: str = "pm2"
    apps: dict[str, FakeApp] = field(default_factory=dict)
    fail_start: set[Path] = field(default_factory=set)
    fail_save: bool = False
    crashing: set[str] = field(default_factory=set)
    _next_pid: int = FIRST_PID
    _next_id: int = 0

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)

    # --- what the tests read -------------------------------------------------------------

    @property
    def dump_path(self) -> Path:
        return self.home / "dump.pm2"

    @property
    def daemon_running(self) -> bool:
        return (self.home / "pm2.pid").exists()

    def dump(self) -> list[dict[str, Any]]:
        data: list[dict[str, Any]] = json.loads(self.dump_path.read_text())
        return data

    # --- the runner ------------------------------------------------------------------------

    def __call__(self, argv: proc.Argv, *, timeout: float, cwd: str | Path | None = None,
                 env: Any = None, check: bool = True) -> proc.Result:
        args = [str(a) for a in argv]
        if args[:3] == [sys.executable, "-m", activation.CHILD_MODULE]:
            code, out, err = self._switch_child(args[3])
        else:
            code, out, err = self._pm2(args[1:], Path(cwd) if cwd else None, dict(env or {}))
        result = proc.Result(tuple(args), code, out, err, 0.01)
        if check and code != 0:
            raise CommandFailed(f"`{proc.display(args)}` exited with code {code}. "
                                f"Last output:\n{proc.tail(out + err)}")
        return result

    def _switch_child(self, spec: str) -> tuple[int, str, str]:
        try:
            return activation.child_main(spec, runner=self), "", ""
        except Exception as error:  # noqa: BLE001 - what the child's __main__ prints
            return 1, "", f"switch failed: {error}\n"

    def _pm2(self, args: list[str], cwd: Path | None, env: dict[str, str]
             ) -> tuple[int, str, str]:
        verb = args[0] if args else ""
        if verb == "--version":
            return 0, "6.0.8\n", ""
        if verb == "kill":
            self.apps.clear()
            (self.home / "pm2.pid").unlink(missing_ok=True)
            return 0, "[PM2] Stopping PM2...\n[PM2] PM2 stopped\n", ""
        banner = self._spawn_daemon()
        handlers = {"jlist": self._jlist, "start": self._start, "delete": self._delete,
                    "stop": self._stop, "restart": self._restart, "save": self._save,
                    "resurrect": self._resurrect}
        if verb not in handlers:
            return 1, "", f"[PM2][ERROR] unknown command {verb}\n"
        code, out, err = handlers[verb](args[1:], cwd, env)
        return code, banner + out, err

    def _spawn_daemon(self) -> str:
        if self.daemon_running:
            return ""
        # The daemon's pid must be a live process: this test process stands in for it.
        (self.home / "pm2.pid").write_text(f"{os.getpid()}\n")
        return (f"[PM2] Spawning PM2 daemon with pm2_home={self.home}\n"
                "[PM2] PM2 Successfully daemonized\n")

    def _pid(self) -> int:
        self._next_pid += 1
        return self._next_pid

    def _launch(self, app: FakeApp) -> None:
        if app.name in self.crashing:
            app.status, app.pid = "errored", 0
            app.restarts += 15
            app.unstable_restarts += 15
        else:
            app.status, app.pid = "online", self._pid()

    def _find(self, name: str) -> FakeApp | None:
        return self.apps.get(name)

    def _not_found(self, name: str) -> tuple[int, str, str]:
        return 1, "", f"[PM2][ERROR] Process or Namespace {name} not found\n"

    # --- the commands ---------------------------------------------------------------------

    def _jlist(self, _args: list[str], _cwd: Path | None, _env: dict[str, str]
               ) -> tuple[int, str, str]:
        return 0, json.dumps([self._entry(app) for app in self.apps.values()]) + "\n", ""

    def _start(self, args: list[str], cwd: Path | None, env: dict[str, str]
               ) -> tuple[int, str, str]:
        script, name = args[0], args[args.index("--name") + 1]
        rest = args[args.index("--") + 1:] if "--" in args else []
        if cwd is None or cwd in self.fail_start or not cwd.is_dir():
            return 1, "", f"[PM2][ERROR] Script not found or cwd unusable: {cwd}\n"
        existing = self._find(name)
        if existing is not None:  # PM2 restarts an app started again under its name
            existing.restarts += 1
            self._launch(existing)
            return 0, f"[PM2] Applying action restartProcessId on app [{name}]\n", ""
        exec_path = "/usr/bin/npm" if script == "npm" else str((cwd / script).resolve())
        app = FakeApp(name, cwd, dict(env.items()), exec_path, rest, self._next_id)
        self._next_id += 1
        self.apps[name] = app
        self._launch(app)
        return 0, f"[PM2] Starting {exec_path} in fork_mode (1 instance)\n[PM2] Done.\n", ""

    def _delete(self, args: list[str], _cwd: Path | None, _env: dict[str, str]
                ) -> tuple[int, str, str]:
        if self.apps.pop(args[0], None) is None:
            return self._not_found(args[0])
        return 0, f"[PM2] Applying action deleteProcessId on app [{args[0]}]\n", ""

    def _stop(self, args: list[str], _cwd: Path | None, _env: dict[str, str]
              ) -> tuple[int, str, str]:
        app = self._find(args[0])
        if app is None:
            return self._not_found(args[0])
        app.status, app.pid = "stopped", 0
        return 0, f"[PM2] Applying action stopProcessId on app [{args[0]}]\n", ""

    def _restart(self, args: list[str], _cwd: Path | None, _env: dict[str, str]
                 ) -> tuple[int, str, str]:
        app = self._find(args[0])
        if app is None:
            return self._not_found(args[0])
        app.restarts += 1
        self._launch(app)
        return 0, f"[PM2] Applying action restartProcessId on app [{args[0]}]\n", ""

    def _save(self, args: list[str], _cwd: Path | None, _env: dict[str, str]
              ) -> tuple[int, str, str]:
        if self.fail_save:
            return 1, "", f"[PM2][ERROR] Failed to save dump file in {self.dump_path}\n"
        if not self.apps and "--force" not in args:
            return 0, ("[PM2][WARN] PM2 is not managing any process, skipping save...\n"
                       "[PM2][WARN] To force saving use: pm2 save --force\n"), ""
        if self.dump_path.exists():
            (self.home / "dump.pm2.bak").write_bytes(self.dump_path.read_bytes())
        saved = []
        for app in self.apps.values():
            pm2_env = self._entry(app)["pm2_env"]
            for key in _DUMP_DROPS:
                pm2_env.pop(key, None)
            saved.append(pm2_env)
        self.dump_path.write_text(json.dumps(saved, indent=2))
        saved_line = f"[PM2] Successfully saved in {self.dump_path}\n"
        return 0, "[PM2] Saving current process list...\n" + saved_line, ""

    def _resurrect(self, _args: list[str], _cwd: Path | None, _env: dict[str, str]
                   ) -> tuple[int, str, str]:
        try:
            saved = json.loads(self.dump_path.read_text())
        except (OSError, ValueError):
            return 0, "", "[PM2][ERROR] No processes saved; DUMP file doesn't exist\n"
        out = f"[PM2] Restoring processes located in {self.dump_path}\n"
        for entry in saved:
            if entry["name"] in self.apps:
                continue
            app = FakeApp(entry["name"], Path(entry["pm_cwd"]), dict(entry.get("env") or {}),
                          entry["pm_exec_path"], list(entry.get("args") or []), self._next_id,
                          restarts=int(entry.get("restart_time") or 0))
            self._next_id += 1
            self.apps[app.name] = app
            self._launch(app)
            out += f"[PM2] Process {app.exec_path} restored\n"
        return 0, out, ""

    # --- PM2's shape ----------------------------------------------------------------------

    def _entry(self, app: FakeApp) -> dict[str, Any]:
        entry = copy.deepcopy(TEMPLATE)
        pm2_env = entry["pm2_env"]
        env = {"PM2_HOME": str(self.home), **app.env}
        pm2_env.update({
            "name": app.name, "pm_cwd": str(app.cwd), "pm_exec_path": app.exec_path,
            "args": app.args, "env": {**env, app.name: {}}, "status": app.status,
            "pm_uptime": app.started_at_ms, "created_at": app.started_at_ms,
            "restart_time": app.restarts, "unstable_restarts": app.unstable_restarts,
            "pm_id": app.pm_id, "exec_interpreter": "/usr/bin/node" if app.args else "node",
            "pm_out_log_path": str(self.home / "logs" / f"{app.name}-out.log"),
            "pm_err_log_path": str(self.home / "logs" / f"{app.name}-error.log"),
            "pm_pid_path": str(self.home / "pids" / f"{app.name}-{app.pm_id}.pid"),
            **env,  # PM2 copies every variable onto pm2_env too
        })
        entry.update({"name": app.name, "pid": app.pid, "pm_id": app.pm_id,
                      "monit": {"memory": 60_000_000 if app.online else 0,
                                "cpu": 0.1 if app.online else 0}})
        return entry
