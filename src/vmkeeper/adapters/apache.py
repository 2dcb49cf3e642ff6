"""Apache httpd as the reverse proxy: a minimal own config, start/stop/graceful, its state, and
the vmkeeper-owned include that the zero-downtime switch rewrites (docs/deploy-switch.md)."""

from __future__ import annotations

import os
import re
import shutil
import signal
import time
from collections.abc import Sequence
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
    frontend_include: Path | None = None,
) -> str:
    """A self-contained httpd config: loopback only, its own pid and logs under ``root``.

    ``retry=0``: ProxyPass's default retry (60 s) keeps an upstream it once failed to reach in
    error for a minute, so a one-second PM2 restart becomes a minute of 503s. With
    ``frontend_include`` the config carries the VM snippet (``snippet``) above the ``/`` route.
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
        f"LoadModule rewrite_module {MODULES_DIR}/mod_rewrite.so" if frontend_include else "",
        # Assets served from disk need their types (a stylesheet as text/plain is ignored).
        *_mime_lines(frontend_include is not None),
        f"LoadModule headers_module {MODULES_DIR}/mod_headers.so"
        if frontend_include and (MODULES_DIR / "mod_headers.so").exists() else "",
        f"User {user}" if os.geteuid() == 0 else "",
        f"Group {group}" if os.geteuid() == 0 else "",
        'LogFormat "%h %l %u %t \\"%r\\" %>s %b %D" timed',
        f'CustomLog "{root / "logs" / "access.log"}" timed',
        # Debian's mpm_event defaults, as on the VM. A graceful restart needs scoreboard room
        # for the new children while the old ones finish: with ServerLimit 2 the new
        # generation waited ("scoreboard is full") and requests hung for 2 s.
        "StartServers 2",
        "ServerLimit 16",
        "ThreadsPerChild 25",
        "MaxRequestWorkers 150",
        "Timeout 30",
        "ProxyPreserveHost On",
        "ProxyTimeout 30",
    ]
    # Longest path first: Apache takes the first ProxyPass that matches.
    for route in sorted(routes, key=lambda r: len(r.path), reverse=True):
        target = f"http://127.0.0.1:{route.upstream_port}{route.path}"
        if route.path == "/" and frontend_include is not None:
            lines.extend(snippet(frontend_include).splitlines())
        lines.append(f"ProxyPass {route.path} {target} retry={retry}")
        lines.append(f"ProxyPassReverse {route.path} {target}")
    return "\n".join(line for line in lines if line) + "\n"


def _mime_lines(wanted: bool) -> list[str]:
    if not wanted or not (MODULES_DIR / "mod_mime.so").exists():
        return []
    lines = [f"LoadModule mime_module {MODULES_DIR}/mod_mime.so"]
    if Path("/etc/mime.types").exists():
        lines.append('TypesConfig "/etc/mime.types"')
    return lines


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

    def graceful_argv(self) -> list[str]:
        return [self.binary, "-f", str(self.config), "-k", "graceful"]

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


# --- the zero-downtime switch's include -------------------------------------------------------

INCLUDE_HEADER = "# Written by vmkeeper at every frontend switch; edits here are overwritten."


def graceful(command: Sequence[str], *, timeout: float, runner: proc.Runner = proc.run
             ) -> proc.Result:
    """Reread the config without dropping a connection: new children take new requests, old
    ones finish theirs. httpd and apachectl test the config first and, if it is broken, refuse
    (exit 1) and keep the running server as it was."""
    return runner(list(command), timeout=timeout)


def snippet(include: Path) -> str:
    """What the VM's Apache config needs, once, for the zero-downtime switch: put it in the
    VirtualHost that proxies the site, after other ProxyPass lines (/api) and just above the
    frontend's own `ProxyPass / http://127.0.0.1:3001/` (which stays: Apache takes the first
    match, so that line serves only while the include does not exist yet). Needs mod_rewrite
    (`a2enmod rewrite`) beside mod_proxy and mod_proxy_http."""
    return (
        "# vmkeeper: zero-downtime frontend switch (see `vmkeeper doctor`)\n"
        f'IncludeOptional "{include}"\n'
    )


_PORT_LINE = re.compile(r'^ProxyPass "/" "http://127\.0\.0\.1:(\d+)/"', re.MULTILINE)


def render_frontend_include(port: int, static_dirs: Sequence[Path], releases_root: Path) -> str:
    """Route ``/`` to the frontend on ``port``; answer ``/_next/static/`` from disk, from the
    first of ``static_dirs`` (every retained release's build/static, newest first) that has the
    file — so a page loaded from an older retained release still finds its chunks. A chunk in
    none of them is Apache's 404, never proxied (a pruned release's assets are gone)."""
    target = f"http://127.0.0.1:{port}/"
    lines = [
        INCLUDE_HEADER,
        'ProxyPass "/_next/static/" "!"',
        # ttl below Node's 5 s keepAliveTimeout: Apache drops an idle pooled connection before
        # the server does, so it never sends a request into one the server is closing (a 502).
        f'ProxyPass "/" "{target}" retry=0 ttl=2',
        f'ProxyPassReverse "/" "{target}"',
        "RewriteEngine On",
    ]
    for folder in static_dirs:
        lines.append(f'RewriteCond "{folder}/$1" -f')
        lines.append(f'RewriteRule "^/_next/static/(.+)$" "{folder}/$1" [L]')
    lines += [
        f'<Directory "{releases_root}">',
        "    Require all granted",
        # Hashed names never change content: what `next start` itself sends for them.
        "    <IfModule mod_headers.c>",
        '        Header set Cache-Control "public, max-age=31536000, immutable"',
        "    </IfModule>",
        "</Directory>",
    ]
    return "\n".join(lines) + "\n"


def include_port(text: str) -> int | None:
    """The frontend port an include written by ``render_frontend_include`` routes to."""
    match = _PORT_LINE.search(text)
    return int(match.group(1)) if match else None


_INCLUDE_LINE = re.compile(r'^\s*Include(?:Optional)?\s+"?([^"\s]+)"?\s*$', re.IGNORECASE)


def config_files(config: Path) -> list[Path]:
    """The main config and what Debian's layout includes beside it."""
    files = [config]
    for folder in ("sites-enabled", "conf-enabled"):
        directory = config.parent / folder
        if directory.is_dir():
            files.extend(sorted(p for p in directory.iterdir() if p.suffix == ".conf"))
    return files


def includes(config: Path, include: Path) -> bool:
    """Does Apache's config (or a site/conf file beside it) Include ``include``?"""
    wanted = str(include)
    for file in config_files(config):
        try:
            text = file.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            match = _INCLUDE_LINE.match(line)
            if match and match.group(1) == wanted:
                return True
    return False
