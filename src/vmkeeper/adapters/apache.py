"""Apache httpd as the reverse proxy: a minimal own config, start/stop, and its state."""

from __future__ import annotations

import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from vmkeeper import proc
from vmkeeper.adapters.host import kill_processes
from vmkeeper.errors import CommandFailed, CommandNotFound, CommandTimeout

MODULES_DIR = Path("/usr/lib/apache2/modules")
CANDIDATE_BINARIES = ("apache2", "/usr/sbin/apache2", "httpd", "/usr/sbin/httpd")


def find_binary(preferred: str = "apache2") -> str | None:
    for candidate in (preferred, *CANDIDATE_BINARIES):
        found = shutil.which(candidate) or (candidate if os.access(candidate, os.X_OK) else None)
        if found:
            return found
    return None


@dataclass(frozen=True)
class ProxyRoute:
    path: str
    upstream_port: int


def render_config(
    *,
    root: Path,
    port: int,
    routes: list[ProxyRoute],
    server_name: str = "localhost",
    user: str = "www-data",
    group: str = "www-data",
    retry: int = 0,
) -> str:
    """A self-contained httpd config: loopback only, its own pid and logs under ``root``.

    ``retry=0``: ProxyPass's default retry (60 s) keeps an upstream it once failed to reach in
    error for a minute, so a one-second PM2 restart becomes a minute of 503s.
    """
    lines = [
        f'ServerRoot "{root}"',
        f"ServerName {server_name}",
        f"Listen 127.0.0.1:{port}",
        f'PidFile "{root / "run" / "httpd.pid"}"',
        f'DefaultRuntimeDir "{root / "run"}"',
        f'ErrorLog "{root / "logs" / "error.log"}"',
        "LogLevel warn",
        f"LoadModule mpm_event_module {MODULES_DIR}/mod_mpm_event.so",
        f"LoadModule unixd_module {MODULES_DIR}/mod_unixd.so" if _needs_unixd() else "",
        f"LoadModule authz_core_module {MODULES_DIR}/mod_authz_core.so",
        f"LoadModule log_config_module {MODULES_DIR}/mod_log_config.so"
        if (MODULES_DIR / "mod_log_config.so").exists() else "",
        f"LoadModule proxy_module {MODULES_DIR}/mod_proxy.so",
        f"LoadModule proxy_http_module {MODULES_DIR}/mod_proxy_http.so",
        f"User {user}" if os.geteuid() == 0 else "",
        f"Group {group}" if os.geteuid() == 0 else "",
        'LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" timed',
        f'CustomLog "{root / "logs" / "access.log"}" timed',
        "StartServers 1",
        "ServerLimit 2",
        "ThreadsPerChild 25",
        "MaxRequestWorkers 50",
        "Timeout 30",
        "ProxyPreserveHost On",
        "ProxyTimeout 30",
    ]
    # Longest path first: Apache takes the first ProxyPass that matches.
    for route in sorted(routes, key=lambda r: len(r.path), reverse=True):
        target = f"http://127.0.0.1:{route.upstream_port}{route.path}"
        lines.append(f"ProxyPass {route.path} {target} retry={retry}")
        lines.append(f"ProxyPassReverse {route.path} {target}")
    return "\n".join(line for line in lines if line) + "\n"


def _needs_unixd() -> bool:
    return (MODULES_DIR / "mod_unixd.so").exists()


@dataclass(frozen=True)
class Apache:
    binary: str
    config: Path
    pid_file: Path
    timeout: float = 20.0

    def configtest(self) -> proc.Result:
        return proc.run([self.binary, "-f", str(self.config), "-t"], timeout=self.timeout)

    def start(self) -> None:
        proc.run([self.binary, "-f", str(self.config), "-k", "start"], timeout=self.timeout)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline and self.pid() is None:
            time.sleep(0.1)

    def pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
            return pid if psutil.pid_exists(pid) else None
        except (OSError, ValueError):
            return None

    def stop(self) -> None:
        """Stop the server and wait until every process of it has gone."""
        pid = self.pid()
        if pid is None:
            return
        children = []
        try:
            parent = psutil.Process(pid)
            children = parent.children(recursive=True) + [parent]
        except psutil.Error:
            pass
        try:
            proc.run([self.binary, "-f", str(self.config), "-k", "stop"], timeout=self.timeout)
        except (CommandNotFound, CommandFailed, CommandTimeout):
            os.kill(pid, signal.SIGTERM)
        _gone, alive = psutil.wait_procs(children, timeout=self.timeout)
        kill_processes(alive, timeout=5)
