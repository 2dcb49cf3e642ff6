"""PM2: argv builders (pure), output parsers (pure), and a thin client over proc.run.

Every call sets ``PM2_HOME`` explicitly: the runbook's PM2 runs as `ubuntu` with
``~/.pm2``; the sandbox and tests run their own daemon elsewhere.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from vmkeeper import proc
from vmkeeper.adapters import pm2_rpc
from vmkeeper.errors import VmkeeperError
from vmkeeper.jsonable import parse_json


class Pm2OutputError(VmkeeperError):
    pass


@dataclass(frozen=True)
class Pm2App:
    """One app as `pm2 jlist` (live) or `dump.pm2` (saved) describes it."""

    name: str
    status: str
    pid: int | None
    pm_id: int | None
    cwd: Path | None
    exec_path: str | None
    args: tuple[str, ...]
    interpreter: str | None
    restarts: int
    unstable_restarts: int
    started_at_ms: int | None
    memory_bytes: int | None
    cpu_percent: float | None
    env: Mapping[str, str] = field(default_factory=dict)
    # The Node version PM2 recorded for the app's interpreter, and its log files.
    node_version: str | None = None
    out_log: Path | None = None
    err_log: Path | None = None

    @property
    def online(self) -> bool:
        return self.status == "online"

    def env_value(self, name: str) -> str | None:
        return self.env.get(name)


def _as_args(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, list):
        return tuple(str(v) for v in value)
    return (str(value),)


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError, OverflowError):
        return None


def _as_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return None
    try:
        return float(value)
    except (ValueError, OverflowError):
        return None


def _as_text(value: Any) -> str | None:
    """A string field as PM2 writes it; None for anything else a hand-edited or hostile dump
    holds there (an object, a list) or an empty one."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        return None
    return str(value) or None


def _as_path(value: Any) -> Path | None:
    text = _as_text(value)
    return Path(text) if text and "\x00" not in text else None


def _string_env(raw: Any) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(k): str(v) for k, v in raw.items() if not isinstance(v, (dict, list))}


def app_from_entry(entry: Mapping[str, Any]) -> Pm2App:
    """Build a Pm2App from a jlist entry (fields under ``pm2_env``) or a dump entry (flat)."""
    pm2_env = entry.get("pm2_env")
    env_source: Mapping[str, Any] = pm2_env if isinstance(pm2_env, Mapping) else entry
    monit = entry.get("monit") if isinstance(entry.get("monit"), Mapping) else {}
    env = _string_env(env_source.get("env"))
    # PM2 also copies each environment variable onto pm2_env itself (FRONT_PORT appears there).
    for key, value in env_source.items():
        if key.isupper() and isinstance(value, (str, int, float)) and key not in env:
            env[key] = str(value)
    cwd = _as_path(env_source.get("pm_cwd")) or _as_path(env_source.get("cwd"))
    pid = _as_int(entry.get("pid")) if pm2_env is not None else None
    return Pm2App(
        name=str(entry.get("name") or env_source.get("name") or "?"),
        status=str(env_source.get("status") or "unknown"),
        pid=pid if pid else None,
        pm_id=_as_int(entry.get("pm_id", env_source.get("pm_id"))),
        cwd=cwd,
        exec_path=_as_text(env_source.get("pm_exec_path")),
        args=_as_args(env_source.get("args")),
        interpreter=_as_text(env_source.get("exec_interpreter")),
        restarts=_as_int(env_source.get("restart_time")) or 0,
        unstable_restarts=_as_int(env_source.get("unstable_restarts")) or 0,
        started_at_ms=_as_int(env_source.get("pm_uptime")),
        memory_bytes=_as_int(monit.get("memory")) if monit else None,
        cpu_percent=_as_float(monit.get("cpu")) if monit else None,
        env=env,
        node_version=_as_text(env_source.get("node_version")),
        out_log=_as_path(env_source.get("pm_out_log_path")),
        err_log=_as_path(env_source.get("pm_err_log_path")),
    )


def _json_array(text: str, what: str) -> list[Any]:
    """The JSON array in PM2's output.

    `pm2 jlist` prints a banner and "[PM2] Spawning PM2 daemon…" lines before the JSON when
    it had to start the daemon, so the array is the last line that parses as one.
    """
    stripped = text.strip()
    if stripped.startswith("[{") or stripped == "[]":
        candidates = [stripped]
    else:
        candidates = [line.strip() for line in reversed(text.splitlines())
                      if line.strip().startswith("[") and line.strip().endswith("]")]
    error: json.JSONDecodeError | None = None
    for candidate in candidates:
        try:
            data = parse_json(candidate, what, error=Pm2OutputError)
        except json.JSONDecodeError as failed:
            error = error or failed
            continue
        if not isinstance(data, list):
            raise Pm2OutputError(f"{what} is not a JSON array.")
        return data
    if not stripped:
        raise Pm2OutputError(f"{what} is empty.")
    detail = f" ({error.msg} at {error.pos})" if error else ""
    raise Pm2OutputError(f"{what} holds no JSON array{detail}.")


def parse_jlist(text: str) -> list[Pm2App]:
    entries = _json_array(text, "`pm2 jlist` output")
    return [app_from_entry(e) for e in entries if isinstance(e, dict)]


def parse_dump(text: str) -> list[Pm2App]:
    """dump.pm2 as `pm2 save` writes it: one (pretty-printed) JSON array of app entries."""
    try:
        data = parse_json(text, "dump.pm2", error=Pm2OutputError)
    except json.JSONDecodeError as error:
        raise Pm2OutputError(
            f"dump.pm2 is not JSON ({error.msg} at line {error.lineno}).") from None
    if not isinstance(data, list):
        raise Pm2OutputError("dump.pm2 is not a JSON array.")
    return [app_from_entry(e) for e in data if isinstance(e, dict)]


def start_npm_argv(pm2_bin: str, name: str, script: str) -> list[str]:
    """The runbook's `pm2 start npm --name <name> -- run <script>`."""
    return [pm2_bin, "start", "npm", "--name", name, "--", "run", script]


def start_file_argv(pm2_bin: str, name: str, path: str | Path) -> list[str]:
    return [pm2_bin, "start", str(path), "--name", name]


def restart_argv(pm2_bin: str, name: str) -> list[str]:
    return [pm2_bin, "restart", name, "--update-env"]


def resurrect_argv(pm2_bin: str) -> list[str]:
    return [pm2_bin, "resurrect"]


@dataclass(frozen=True)
class Pm2:
    """A PM2 installation: its program, its PM2_HOME, and how long one call may take."""

    bin: str
    home: Path
    timeout: float = 30.0
    runner: proc.Runner = proc.run
    # How the process list is asked of the running daemon (adapters/pm2_rpc.py: its socket,
    # no Node start, never a new daemon); None: only through ``runner`` (the fakes).
    daemon_list: Callable[[Path, float], list[Any]] | None = pm2_rpc.monitor_data

    @property
    def dump_path(self) -> Path:
        return self.home / "dump.pm2"

    @property
    def pid_path(self) -> Path:
        return self.home / "pm2.pid"

    def _run(
        self,
        argv: Sequence[str],
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
        check: bool = True,
        timeout: float | None = None,
    ) -> proc.Result:
        full_env = {"PM2_HOME": str(self.home)}
        full_env.update(env or {})
        return self.runner(
            list(argv), timeout=timeout or self.timeout, cwd=cwd, env=full_env, check=check
        )

    def daemon_pid(self) -> int | None:
        """The PM2 daemon's pid if it runs. Never starts it (every pm2 command would)."""
        try:
            pid = int(self.pid_path.read_text().strip())
        except (OSError, ValueError):
            return None
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return pid

    def jlist(self) -> list[Pm2App]:
        """Every app PM2 runs: asked of the daemon's socket; when no daemon answers there,
        `pm2 jlist` — which starts one, as every pm2 command does (use :meth:`live_list` to
        look without starting anything)."""
        answered, apps = self._from_daemon()
        if answered and apps is not None:
            return apps
        return parse_jlist(self._run([self.bin, "jlist"]).stdout)

    def live_list(self) -> list[Pm2App] | None:
        """The running daemon's apps, or None when no daemon runs. Never starts one: a look
        that started a daemon would hide the outage it was asked about."""
        answered, apps = self._from_daemon()
        if answered:
            return apps
        # No socket to ask (the fakes), or one in another protocol: the CLI, if a daemon runs.
        return self.jlist() if self.daemon_pid() is not None else None

    def _from_daemon(self) -> tuple[bool, list[Pm2App] | None]:
        """(answered, apps) over the daemon's socket: (True, apps) from a daemon, (True, None)
        when no daemon runs, (False, None) when there is no socket to ask or it answered in a
        protocol this vmkeeper does not know (logged: the CLI is asked instead)."""
        if self.daemon_list is None:
            return False, None
        try:
            entries = self.daemon_list(self.home, self.timeout)
        except pm2_rpc.DaemonUnreachable:
            return True, None
        except pm2_rpc.RpcProtocolError as error:
            from vmkeeper import logs

            logs.get_logger("vmkeeper.pm2").warning("PM2's socket: asking the CLI instead",
                                                    error=str(error))
            return False, None
        return True, [app_from_entry(e) for e in entries if isinstance(e, dict)]

    def app(self, name: str) -> Pm2App | None:
        return next((a for a in self.jlist() if a.name == name), None)

    def start_npm(
        self, name: str, cwd: Path, script: str, env: Mapping[str, str] | None = None
    ) -> proc.Result:
        return self._run(start_npm_argv(self.bin, name, script), cwd=cwd, env=env)

    def start_file(
        self, name: str, path: Path, cwd: Path, env: Mapping[str, str] | None = None
    ) -> proc.Result:
        return self._run(start_file_argv(self.bin, name, path), cwd=cwd, env=env)

    def delete(self, name: str, *, check: bool = True) -> proc.Result:
        return self._run([self.bin, "delete", name], check=check)

    def stop(self, name: str) -> proc.Result:
        return self._run([self.bin, "stop", name])

    def restart(self, name: str) -> proc.Result:
        return self._run(restart_argv(self.bin, name))

    def save(self, *, force: bool = False) -> proc.Result:
        return self._run([self.bin, "save", *(["--force"] if force else [])])

    def resurrect(self) -> proc.Result:
        return self._run(resurrect_argv(self.bin), timeout=max(self.timeout, 60))

    def kill(self) -> proc.Result:
        return self._run([self.bin, "kill"], check=False, timeout=max(self.timeout, 60))

    def logs_dir(self) -> Path:
        return self.home / "logs"

    def read_dump(self) -> list[Pm2App]:
        return parse_dump(self.dump_path.read_text())

    def version(self) -> str:
        return self._run([self.bin, "--version"]).stdout.strip().splitlines()[-1]


def from_settings(bin: str, home: Path, timeout: float) -> Pm2:
    return Pm2(bin=bin, home=Path(os.path.expanduser(str(home))), timeout=timeout)
