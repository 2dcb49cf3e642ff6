"""Everything health looks at, gathered concurrently (vmkeeper.gather): each source in its own
thread with its own timeout, failures kept as values. The judging (checks.py) is pure and runs
on these facts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psutil

from vmkeeper.adapters import apache, host, host_commands, http, systemd
from vmkeeper.adapters.pm2 import Pm2, Pm2App, from_settings
from vmkeeper.gather import Gathering, Got
from vmkeeper.settings import Settings


@dataclass(frozen=True)
class Pm2Snapshot:
    daemon_pid: int | None
    apps: list[Pm2App] | None  # None when the daemon is down (jlist would start one)
    # Every pid in each app's process tree: `npm run start` listens from a grandchild.
    trees: dict[str, set[int]] = field(default_factory=dict)


@dataclass(frozen=True)
class Route:
    """Where Apache sends the site: through the zero-downtime switch's map (``by_map``) to
    ``port`` (None: the map names none), or by the runbook's ProxyPass to FRONT_PORT."""

    by_map: bool
    port: int | None = None


@dataclass(frozen=True)
class Facts:
    filesystems: Got[list[host.FsUsage]]
    memory: Got[host.MemoryUsage]
    listeners: Got[list[host.Listener]]
    probes: dict[str, Got[http.Probe]]
    pm2: Got[Pm2Snapshot]
    unit: Got[systemd.UnitState] | None  # None where PM2 is not supervised by systemd
    dump: Got[list[Pm2App]]
    node_version: Got[str]
    proxy_config: Got[list[str]]  # ProxyPass/BalancerMember lines of Apache's config
    previous_restarts: dict[str, int]
    now: float
    route: Got[Route] | None = None  # None: not looked at
    # listener pid -> the PM2 app whose left-behind server it is (outside PM2's tree, in the
    # app's own folder, its parent gone): see :func:`orphans`
    orphans: dict[int, str] = field(default_factory=dict)


# The facts that cost more than a glance (statvfs of every watched path, the dump's JSON,
# `node -v`, Apache's config files) and change slowly: `vmkeeper watch` gathers them every
# watch.heavy_every cycles and carries them in between (gather's ``carried``).
HEAVY = ("filesystems", "dump", "node_version", "proxy_config")


def health_pm2(settings: Settings) -> Pm2:
    # A health run must not wait PM2's default 30 s on a wedged daemon.
    timeout = min(settings.pm2.timeout_s, settings.health.check_timeout_s)
    return from_settings(settings.pm2.bin, settings.pm2.home, timeout)


def supervisor_mode(settings: Settings) -> str:
    mode = settings.health.supervisor
    if mode == "auto":
        return "systemd" if systemd.available(settings.health.systemctl) else "pm2"
    return mode


def probe_urls(settings: Settings) -> dict[str, tuple[str, dict[str, str]]]:
    """name -> (url, headers). The proxy is asked locally too unless the public URL is local."""
    apps = settings.apps
    urls: dict[str, tuple[str, dict[str, str]]] = {}
    for role in ("frontend", "backend"):
        app = getattr(apps, role)
        if app.port and app.health_path is not None:
            urls[role] = (f"http://127.0.0.1:{app.port}{app.health_path}", {})
    public = settings.public_url.rstrip("/") + "/"
    urls["public"] = (public, {})
    parts = urlsplit(public)
    local = f"http://127.0.0.1:{settings.proxy.port}/"
    if not (parts.hostname in ("127.0.0.1", "localhost") and
            (parts.port or 80) == settings.proxy.port):
        # Ask Apache directly with the public Host, so Cloudflare or DNS trouble is told apart.
        urls["proxy"] = (local, {"Host": parts.netloc or "localhost"})
    return urls


def watched_ports(settings: Settings) -> dict[int, str]:
    """port -> role for every port health expects a listener on."""
    ports = {settings.proxy.port: "proxy"}
    for role, app in settings.app_roles().items():
        if app.port:
            ports[app.port] = role
        for extra in app.extra_ports:
            ports[extra] = role
    return ports


def route(settings: Settings) -> Route:
    """Whether Apache routes the site through the switch's map (its config includes the
    switch's include), and the port the map names (None: no map, or no port line in it)."""
    if not apache.includes(settings.proxy.config, settings.proxy.frontend_include):
        return Route(False)
    return Route(True, apache.routed_port(settings.proxy.frontend_include))


def watched_paths(settings: Settings) -> list[Path]:
    return [settings.workspace.path, settings.releases.root, settings.pm2.home / "logs",
            settings.proxy.error_log.parent]


def _filesystems(paths: list[Path]) -> list[host.FsUsage]:
    seen: dict[int, host.FsUsage] = {}
    for path in paths:
        usage = host.fs_usage(path)
        seen.setdefault(usage.device, usage)  # one filesystem reported once
    return list(seen.values())


def _tree(pid: int | None) -> set[int]:
    if not pid:
        return set()
    try:
        process = psutil.Process(pid)
        return {pid, *(child.pid for child in process.children(recursive=True))}
    except psutil.Error:
        return {pid}


def pm2_snapshot(pm2: Pm2) -> Pm2Snapshot:
    daemon = pm2.daemon_pid()
    # Asked of the daemon itself, never through a pm2 command: one would spawn a fresh daemon
    # when its ping fails and hide the outage it is asked about (adapters/pm2_rpc.py).
    apps = pm2.live_list() if daemon is not None else None
    if daemon is None or apps is None:
        return Pm2Snapshot(None, None)
    return Pm2Snapshot(daemon, apps, {app.name: _tree(app.pid) for app in apps})


def _cwd_of(pid: int) -> Path | None:
    try:
        return Path(psutil.Process(pid).cwd()).resolve()
    except (psutil.Error, OSError):
        return None


def orphans(listeners: list[host.Listener], snapshot: Pm2Snapshot | None,
            ports: dict[int, str], names: dict[str, str],
            cwd_of: Callable[[int], Path | None] = _cwd_of,
            parent_of: Callable[[int], int | None] | None = None) -> dict[int, str]:
    """Listeners that are a PM2 app's own server left behind, by pid → the app's name.

    `kill -9` of an app's PM2 pid under the runbook's `pm2 start npm …` kills the npm wrapper
    only: its node server, orphaned, keeps the port while PM2 starts a new wrapper that cannot
    bind. Such a process is outside every PM2 tree, runs in the app's own folder (PM2's cwd),
    and its parent is in no PM2 tree either — unlike a stranger started from elsewhere."""
    if snapshot is None or snapshot.apps is None:
        return {}
    in_trees = set().union(*snapshot.trees.values()) if snapshot.trees else set()
    apps = {app.name: app for app in snapshot.apps}
    found: dict[int, str] = {}
    for listener in listeners:
        role = ports.get(listener.port)
        app = apps.get(names.get(role or "", ""))
        pid = listener.pid
        if app is None or app.cwd is None or not pid or pid in in_trees:
            continue
        parent = (parent_of or _parent)(pid)
        if parent is not None and parent in in_trees:
            continue
        if cwd_of(pid) == app.cwd.resolve():
            found[pid] = app.name
    return found


def _parent(pid: int) -> int | None:
    try:
        return int(psutil.Process(pid).ppid())
    except psutil.Error:
        return None


def proxy_lines(config: Path) -> list[str]:
    """ProxyPass-like lines of Apache's config and the files it includes next to it (Debian's
    sites-enabled/ and conf-enabled/)."""
    files = [config]
    for folder in ("sites-enabled", "conf-enabled", "mods-enabled"):
        directory = config.parent / folder
        if directory.is_dir():
            files.extend(sorted(p for p in directory.iterdir() if p.suffix == ".conf"))
    lines: list[str] = []
    for file in files:
        for line in file.read_text(errors="replace").splitlines():
            stripped = line.strip()
            if stripped.lower().startswith(("proxypass ", "balancermember ", "proxyset ")):
                lines.append(stripped)
    return lines


def _prober(url: str, headers: dict[str, str], timeout: float) -> Callable[[], http.Probe]:
    return lambda: http.probe(url, timeout=timeout, headers=headers)


def gather(settings: Settings, *, previous_restarts: dict[str, int] | None = None,
           pm2: Pm2 | None = None, mode: str | None = None,
           carried: Facts | None = None) -> Facts:
    """Gather every fact at once; no source may take longer than health.check_timeout_s.

    With ``carried`` (the watcher's cheap cycles) the heavy facts — disk, the dump, Node's
    version, Apache's config (HEAVY) — are not gathered but taken from it."""
    timeout = settings.health.check_timeout_s
    pm2 = pm2 or health_pm2(settings)
    mode = mode or supervisor_mode(settings)
    systemctl = systemd.Systemctl(settings.health.systemctl, timeout=timeout)
    # Every source carries its own timeout; the gathering's deadline only guards against one
    # that does not (a hung filesystem in statvfs), with a margin for the slowest honest one.
    jobs = Gathering(timeout_s=timeout + 2, name="health")
    memory = jobs.add("memory", host.memory)
    # The spare port too: whether anything serves where an interrupted switch left the route.
    listened = [*watched_ports(settings), settings.releases.spare_port]
    listeners = jobs.add("listeners", lambda: host.listeners(listened, timeout=timeout)[0])
    snapshot = jobs.add("pm2", lambda: pm2_snapshot(pm2))
    sources: dict[str, Callable[[], Any]] = {
        "filesystems": lambda: _filesystems(watched_paths(settings)),
        "dump": pm2.read_dump,
        "node_version": lambda: host_commands.node_version(timeout=timeout),
        "proxy_config": lambda: proxy_lines(settings.proxy.config)}
    pending = {} if carried is not None else {
        name: jobs.add(name, source) for name, source in sources.items()}
    probes = {name: jobs.add(f"probe:{name}", _prober(url, headers, timeout))
              for name, (url, headers) in probe_urls(settings).items()}
    unit = (jobs.add("unit", lambda: systemctl.show(settings.pm2.unit))
            if mode == "systemd" else None)
    routing = jobs.add("route", lambda: route(settings))
    jobs.run()
    heavy: dict[str, Got[Any]] = (
        {name: job.got for name, job in pending.items()} if carried is None
        else {name: getattr(carried, name) for name in HEAVY})
    names = {role: app.name for role, app in settings.app_roles().items()}
    strays = orphans(listeners.got.value or [], snapshot.got.value, watched_ports(settings),
                     names)
    return Facts(
        filesystems=heavy["filesystems"],
        memory=memory.got,
        listeners=listeners.got,
        probes={name: probe.got for name, probe in probes.items()},
        pm2=snapshot.got,
        unit=unit.got if unit else None,
        dump=heavy["dump"],
        node_version=heavy["node_version"],
        proxy_config=heavy["proxy_config"],
        previous_restarts=dict(previous_restarts or {}),
        now=time.time(),
        route=routing.got,
        orphans=strays,
    )
