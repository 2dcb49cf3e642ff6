"""`vmkeeper doctor`: is this machine fit to run the VM? Node, PM2, FFmpeg, Apache, paths.

Nothing here starts a PM2 daemon: the PM2 version comes from its package.json.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmkeeper import proc
from vmkeeper.adapters import apache as apache_adapter
from vmkeeper.adapters import host_commands
from vmkeeper.errors import VmkeeperError
from vmkeeper.gather import Gathering, Got
from vmkeeper.health import checks as judge
from vmkeeper.health.facts import proxy_lines
from vmkeeper.health.model import Cause, Check, Layer, Status, worst
from vmkeeper.settings import Settings


@dataclass(frozen=True)
class DoctorReport:
    status: Status
    checks: list[Check]

    @property
    def exit_code(self) -> int:
        return self.status.exit_code


def node_check(settings: Settings, timeout: float) -> Check:
    try:
        version = host_commands.node_version(timeout=timeout)
    except (VmkeeperError, OSError) as error:
        return Check("node", Status.CRITICAL, f"node not usable: {error}", None,
                     f"v{settings.node_major}.x", Layer.RUNTIME)
    ok = host_commands.node_major(version) == settings.node_major
    where = shutil.which("node")
    return Check("node", Status.OK if ok else Status.WARN,
                 f"node -v → {version} at {where}" + ("" if ok else
                 f"; the project requires {settings.node_major}.x"),
                 {"version": version, "path": where}, f"v{settings.node_major}.x", Layer.RUNTIME)


def pm2_version(pm2_bin: str) -> str | None:
    found = shutil.which(pm2_bin) or (pm2_bin if os.access(pm2_bin, os.X_OK) else None)
    if not found:
        return None
    real = Path(found).resolve()
    for parent in real.parents:
        package = parent / "package.json"
        if package.is_file():
            data = json.loads(package.read_text())
            if data.get("name") == "pm2":
                return str(data.get("version"))
            break
    return "?"


def pm2_check(settings: Settings) -> Check:
    version = pm2_version(settings.pm2.bin)
    if version is None:
        return Check("pm2", Status.CRITICAL, f"`{settings.pm2.bin}` not found: install PM2 or "
                     "set pm2.bin", None, "pm2 installed", Layer.SUPERVISOR)
    return Check("pm2", Status.OK, f"PM2 {version} ({settings.pm2.bin}), PM2_HOME "
                 f"{settings.pm2.home}", {"version": version}, "pm2 installed", Layer.SUPERVISOR)


def ffmpeg_check(settings: Settings, timeout: float) -> Check:
    try:
        from vmkeeper.adapters.ffmpeg import ffmpeg_binary

        binary = ffmpeg_binary(settings.media.ffmpeg_path)
        first = proc.run([binary, "-hide_banner", "-version"], timeout=timeout).stdout
    except (ImportError, VmkeeperError, OSError) as error:
        return Check("ffmpeg", Status.WARN, f"FFmpeg not usable: {error}", None,
                     "ffmpeg from the PyPI package or media.ffmpeg_path", Layer.RUNTIME)
    line = first.splitlines()[0] if first else "?"
    return Check("ffmpeg", Status.OK, f"{line} ({binary})", {"path": binary},
                 "ffmpeg runs", Layer.RUNTIME)


def _path_check(name: str, path: Path, *, writable: bool = False, file: bool = False,
                required: bool = True) -> Check:
    missing = Status.CRITICAL if required else Status.WARN
    if not path.exists():
        return Check(f"path:{name}", missing, f"{path} does not exist", None, "exists",
                     Layer.HOST)
    if file and not os.access(path, os.R_OK):
        return Check(f"path:{name}", missing, f"{path} is not readable by this user",
                     None, "readable", Layer.HOST)
    if writable and not os.access(path, os.W_OK):
        return Check(f"path:{name}", missing, f"{path} is not writable by this user",
                     None, "writable", Layer.HOST)
    return Check(f"path:{name}", Status.OK, f"{path}", str(path), "exists", Layer.HOST)


def apache_check(settings: Settings) -> Check:
    binary = apache_adapter.find_binary(settings.proxy.bin)
    if binary is None:
        return Check("apache", Status.CRITICAL, f"`{settings.proxy.bin}` not found", None,
                     "apache2 installed", Layer.APACHE)
    return Check("apache", Status.OK, f"Apache at {binary}", binary, "apache2 installed",
                 Layer.APACHE)


def switch_snippet_check(settings: Settings) -> Check:
    """Is Apache ready for the zero-downtime switch? When not, the two lines to add."""
    include = settings.proxy.frontend_include
    expected = f"{settings.proxy.config} includes {include}"
    if apache_adapter.includes(settings.proxy.config, include):
        return Check("apache:switch", Status.OK, f"Apache includes {include}: deploy and "
                     "rollback switch without downtime", str(include), expected, Layer.APACHE)
    return Check(
        "apache:switch", Status.WARN,
        f"Apache's config does not include {include}, so deploy and rollback use the "
        "runbook's switch (requests fail while the new server starts). Add, in the "
        "VirtualHost that proxies the site, just above its `ProxyPass /` line (with "
        "`a2enmod rewrite`, then `apachectl graceful`):\n"
        + apache_adapter.snippet(include).rstrip("\n"),
        None, expected, Layer.APACHE, reason=Cause.NO_SWITCH_SNIPPET,
        details={"snippet": apache_adapter.snippet(include)},
    )


def _first_file(folder: Path, budget: int = 200) -> Path | None:
    """One file under ``folder`` (a sample of what npm wrote), looking at ``budget`` entries."""
    pending = [folder]
    while pending and budget > 0:
        try:
            entries = sorted(pending.pop().iterdir())
        except OSError:
            continue
        for entry in entries:
            budget -= 1
            if entry.is_file():
                return entry
            if entry.is_dir():
                pending.append(entry)
    return None


def apache_reads_check(settings: Settings) -> Check:
    """Can Apache's user read what the zero-downtime switch hands it: the include, the map it
    rereads per request, and each retained release's static files it serves from disk? On
    Ubuntu a home folder is 0750 and www-data cannot enter it: the map then fails and every
    `/_next/static/` asset is a 404."""
    from vmkeeper import access
    from vmkeeper.releases.handover import static_dirs

    include = settings.proxy.frontend_include
    expected = "Apache's user reads the switch's include, map and static files"
    if not apache_adapter.includes(settings.proxy.config, include):
        return Check("apache:reads", Status.OK, "Apache does not include the switch's snippet: "
                     "it reads nothing vmkeeper writes", None, expected, Layer.APACHE)
    user = apache_adapter.run_user(settings.proxy.config)
    try:
        who = access.Identity.of(user) if user else access.Identity.current()
    except KeyError:
        return Check("apache:reads", Status.WARN, f"Apache's config runs it as {user}, who "
                     "does not exist on this machine", user, expected, Layer.APACHE)
    paths = [include, apache_adapter.map_path(include)]
    for folder in static_dirs(settings):
        paths.append(folder)
        sample = _first_file(folder)
        if sample is not None:
            paths.append(sample)
    blocks = [why for path in paths if (why := access.blocked(path, who))]
    if blocks:
        return Check(
            "apache:reads", Status.CRITICAL,
            f"{blocks[0]}: Apache (as {who.name}) cannot serve the switch's map or static "
            f"files ({len(blocks)} path(s)); let it in — e.g. `chmod o+x` on the folder, or "
            f"add {who.name} to the folder's group — or move releases.root",
            blocks, expected, Layer.APACHE, details={"user": who.name, "blocked": blocks})
    return Check("apache:reads", Status.OK, f"Apache (as {who.name}) reads the switch's map "
                 f"and {len(paths) - 2} static path(s)", who.name, expected, Layer.APACHE)


def _jobs(settings: Settings, timeout: float) -> list[tuple[str, Layer, Callable[[], Check]]]:
    """(check name, layer, job): one job per check, so one that hangs costs only its own."""
    paths = [
        ("workspace", settings.workspace.path, {}),
        ("frontend", settings.frontend_workspace, {}),
        ("releases", settings.releases.root, {"writable": True}),
        ("pm2_home", settings.pm2.home, {}),
        ("dump", settings.pm2.home / "dump.pm2", {"file": True}),
        ("apache_error_log", settings.proxy.error_log, {"file": True, "required": False}),
        ("apache_config", settings.proxy.config, {"file": True}),
        ("state_dir", settings.state_dir, {"writable": True, "required": False}),
    ]
    jobs: list[tuple[str, Layer, Callable[[], Check]]] = [
        ("node", Layer.RUNTIME, lambda: node_check(settings, timeout)),
        ("pm2", Layer.SUPERVISOR, lambda: pm2_check(settings)),
        ("ffmpeg", Layer.RUNTIME, lambda: ffmpeg_check(settings, timeout)),
        ("apache", Layer.APACHE, lambda: apache_check(settings)),
        ("apache:switch", Layer.APACHE, lambda: switch_snippet_check(settings)),
        ("apache:reads", Layer.APACHE, lambda: apache_reads_check(settings)),
        ("proxy_config", Layer.APACHE, lambda: _proxy_retry(settings)),
    ]
    jobs += [(f"path:{name}", Layer.HOST, _path_job(name, path, options))
             for name, path, options in paths]
    return jobs


def _path_job(name: str, path: Path, options: dict[str, bool]) -> Callable[[], Check]:
    return lambda: _path_check(name, path, **options)


def run_doctor(settings: Settings) -> DoctorReport:
    """Every check at once, each within health.check_timeout_s (and a margin): a hung mount
    or a wedged program is reported as a check that did not answer, never a hung doctor."""
    timeout = settings.health.check_timeout_s
    gathering = Gathering(timeout_s=timeout + 2, name="doctor")
    pending = [(name, layer, gathering.add(name, job))
               for name, layer, job in _jobs(settings, timeout)]
    gathering.run()
    checks = []
    for name, layer, job in pending:
        got = job.got
        if got.value is not None:
            checks.append(got.value)
        else:
            checks.append(Check(name, Status.UNKNOWN, f"{name}: {got.error}", None, "an answer",
                                layer, got.seconds))
    return DoctorReport(worst(c.status for c in checks), checks)


def _proxy_retry(settings: Settings) -> Check:
    got: Got[list[str]]
    try:
        got = Got(proxy_lines(settings.proxy.config))
    except OSError as error:
        got = Got(None, str(error))
    # The same judgement health makes, on the same lines.
    return judge.proxy_config_check(_ProxyOnly(got), settings)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _ProxyOnly:
    proxy_config: Got[list[str]]
