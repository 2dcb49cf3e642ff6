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
            children = [*parent.children(recursive=True), parent]
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


MAP_NAME = "vmkeeper_frontend"
STATIC_SLOTS = 4  # retained releases whose /_next/static/ Apache serves (keep 2 + protected)
_MAP_LINE = re.compile(r"^(\S+)[ \t]+(\S+)[ \t]*$")


def map_path(include: Path) -> Path:
    """The map beside the include: the one file a switch rewrites."""
    return include.with_suffix(".map")


def render_frontend_include(include: Path, releases_root: Path, ports: Sequence[int]) -> str:
    """The include's fixed text. Where `/` goes and which releases' assets Apache serves are
    looked up per request in a RewriteMap (``map_path``), which Apache rereads as soon as the
    file's mtime changes: a switch rewrites that file and never restarts Apache — a graceful
    restart closes idle keep-alive connections of clients, and a client that sends on one just
    then gets no answer (measured: 10 of 28,844 requests in bench/deploy_switch.py).

    ``/_next/static/`` is answered from disk, from the first retained release (slots of the
    map, newest first) that has the file: a page of an older retained release keeps its chunks;
    a chunk in none of them is Apache's 404, never proxied.
    Apache warns once at start-up that ${VMKEEPER_FRONTEND} is not defined (AH00111): it is a
    request's variable, not a Define."""
    root = str(releases_root).rstrip("/")
    lines = [
        INCLUDE_HEADER,
        "RewriteEngine On",
        f'RewriteMap {MAP_NAME} "txt:{map_path(include)}"',
    ]
    for slot in range(1, STATIC_SLOTS + 1):
        # The path starts literally with the releases root: mod_rewrite decides at start-up
        # whether a substitution is a file (a leading ${map} would make it a URL).
        lines.append(f'RewriteCond "{root}/${{{MAP_NAME}:static{slot}|.none}}/$1" -f')
        lines.append(f'RewriteRule "^/_next/static/(.+)$" '
                     f'"{root}/${{{MAP_NAME}:static{slot}}}/$1" [L]')
    lines += [
        # The port, per request, into an environment variable the ProxyPass below interpolates:
        # a ProxyPass keeps its place among the vhost's others (/api listed above still wins),
        # which a proxying RewriteRule would not (mod_rewrite runs before every ProxyPass).
        f'RewriteRule "^" "-" [E=VMKEEPER_FRONTEND:127.0.0.1:${{{MAP_NAME}:port|{ports[0]}}}]',
        "ProxyPassInterpolateEnv On",
        'ProxyPass "/_next/static/" "!"',
        # No pooled connections: none can be one the old server is closing (the 502), and a
        # connection to a port exists exactly while a request is in flight (the drain).
        'ProxyPass "/" "http://${VMKEEPER_FRONTEND}/" interpolate disablereuse=On retry=0',
        *(f'ProxyPassReverse "/" "http://127.0.0.1:{port}/"' for port in ports),
        f'<Directory "{root}">',
        "    Require all granted",
        # Hashed names never change content: what `next start` itself sends for them.
        "    <IfModule mod_headers.c>",
        '        Header set Cache-Control "public, max-age=31536000, immutable"',
        "    </IfModule>",
        "</Directory>",
    ]
    return "\n".join(lines) + "\n"


def render_frontend_map(port: int, static_dirs: Sequence[Path], releases_root: Path) -> str:
    """The map: the frontend port, and up to STATIC_SLOTS release static folders (relative to
    the releases root, newest first; a path with blanks cannot be a map value and is left out)."""
    lines = [INCLUDE_HEADER, f"port {port}"]
    usable = []
    for folder in static_dirs:
        try:
            relative = str(folder.relative_to(releases_root))
        except ValueError:
            continue
        if relative and not any(c.isspace() for c in relative):
            usable.append(relative)
    lines += [f"static{n} {rel}" for n, rel in enumerate(usable[:STATIC_SLOTS], start=1)]
    return "\n".join(lines) + "\n"


def map_port(text: str) -> int | None:
    """The frontend port a map written by ``render_frontend_map`` routes to."""
    for line in text.splitlines():
        match = _MAP_LINE.match(line)
        if match and match.group(1) == "port" and match.group(2).isdigit():
            return int(match.group(2))
    return None


def routed_port(include: Path) -> int | None:
    """The port the switch's map beside ``include`` routes `/` to; None when there is no map
    (or it names no port). Other read errors (permissions) are the caller's to see."""
    try:
        return map_port(map_path(include).read_text())
    except FileNotFoundError:
        return None


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


_USER_LINE = re.compile(r"^\s*User\s+(\S+)\s*$", re.IGNORECASE)
_ENVVAR = re.compile(r"^\$\{(\w+)\}$")
_EXPORT = re.compile(r"^\s*export\s+(\w+)=['\"]?([^'\"\s]+)['\"]?\s*$")


def run_user(config: Path) -> str | None:
    """The user Apache's children run as: the config's ``User`` (Debian's
    ``${APACHE_RUN_USER}`` read from ``envvars`` beside it). None when no file names one: an
    Apache started without root runs as whoever starts it."""
    for file in config_files(config):
        try:
            lines = file.read_text(errors="replace").splitlines()
        except OSError:
            continue
        for line in lines:
            match = _USER_LINE.match(line)
            if match is None:
                continue
            user = match.group(1)
            variable = _ENVVAR.match(user)
            if variable is None:
                return user
            return _envvar(config.parent / "envvars", variable.group(1))
    return None


def _envvar(envvars: Path, name: str) -> str | None:
    try:
        lines = envvars.read_text(errors="replace").splitlines()
    except OSError:
        return None
    for line in lines:
        match = _EXPORT.match(line)
        if match and match.group(1) == name:
            return match.group(2)
    return None
