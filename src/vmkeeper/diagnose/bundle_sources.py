"""What `vmkeeper bundle` collects on a VM: the runbook's incident checks, one source each.

Nothing here starts a PM2 daemon (every `pm2` command would, and a bundle must not change the
machine it describes): jlist is asked only when the daemon already runs, the PM2 version is read
from its package.json, and health and status are asked not to remember restart counts.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from vmkeeper import proc
from vmkeeper.adapters import host_commands, pm2_rpc, systemd
from vmkeeper.diagnose.bundle import (
    BundleOptions,
    BundleResult,
    Gathered,
    Piece,
    Skipped,
    Source,
    create_bundle,
    json_piece,
    reason_of,
)
from vmkeeper.errors import CommandNotFound
from vmkeeper.health import facts
from vmkeeper.progress import Progress, silent
from vmkeeper.redact import DocumentKind
from vmkeeper.settings import LoadedSettings, Settings, settings_as_dict

# The runbook's OOM incident is found the morning after: a day of kernel log covers it.
OOM_WINDOW = "-24h"
UNIT_JOURNAL_LINES = 200


def standard_bundle(loaded: LoadedSettings, *, output: Path | None, timeout_s: float,
                    log_lines: int | None = None, progress: Progress = silent) -> BundleResult:
    """The bundle `vmkeeper bundle` writes (every default source, the version and config file
    in its manifest): the CLI, the agent's POST /v1/bundle and an incident's evidence."""
    from vmkeeper import __version__

    return create_bundle(
        default_sources(loaded, timeout_s=timeout_s, log_lines=log_lines),
        BundleOptions(output=output, timeout_s=timeout_s,
                      extra_manifest={"vmkeeper_version": __version__,
                                      "config_file": loaded.config_file}),
        progress=progress)


def default_sources(loaded: LoadedSettings, *, timeout_s: float,
                    log_lines: int | None = None) -> list[Source]:
    """Every source of a bundle, in the order a reader wants them."""
    settings = loaded.settings

    def command(name: str, argv: list[str]) -> Callable[[], Gathered]:
        return lambda: [Piece(name, host_commands.output(argv, timeout=timeout_s))]

    return [
        Source("health", lambda: [json_piece("health.json", _health(settings))]),
        Source("status", lambda: [json_piece("status.json", _status(settings))]),
        Source("pm2 jlist", lambda: jlist(settings, timeout_s)),
        Source("dump.pm2", lambda: dump(settings)),
        Source("logs", lambda: logs(settings, log_lines)),
        Source("pm2 unit journal", lambda: unit_journal(settings, timeout_s)),
        Source("oom", lambda: oom(settings, timeout_s)),
        Source("df -h", command("host/df-h.txt", host_commands.df_argv())),
        Source("df -ih", command("host/df-ih.txt", host_commands.df_argv(inodes=True))),
        Source("free", command("host/free.txt", host_commands.free_argv())),
        Source("listening sockets", lambda: listening(timeout_s)),
        Source("versions", lambda: versions(settings, timeout_s)),
        Source("settings", lambda: [json_piece("settings.json", {
            "settings": settings_as_dict(settings),
            # A list, not `config show`'s mapping: keyed by setting name, the source of
            # `media.token` ("default") would itself be redacted as a token.
            "sources": [{"setting": key, "source": source}
                        for key, source in sorted(loaded.sources.items())],
            "config_file": loaded.config_file,
        })]),
    ]


def _health(settings: Settings) -> object:
    from vmkeeper.health.service import run_health

    # remember=False: the restart counts health keeps are the operator's baseline, not ours.
    return run_health(settings, remember=False)


def _status(settings: Settings) -> object:
    from vmkeeper.health.service import run_status

    return run_status(settings)


def _json_text(stdout: str) -> str:
    # PM2 may print banner lines before the array; the adapter parsed it, so one line holds it.
    stripped = stdout.strip()
    for candidate in [stripped, *reversed(stdout.splitlines())]:
        try:
            json.loads(candidate)
        except ValueError:
            continue
        return candidate.strip() + "\n"
    return stdout


def jlist(settings: Settings, timeout_s: float) -> Gathered:
    pm2 = facts.health_pm2(settings)
    if pm2.daemon_pid() is None:
        return [Skipped("pm2 jlist", f"no PM2 daemon runs in {pm2.home} (asking would start "
                        "one); see dump.pm2 for what it would resurrect")]
    try:  # the daemon's own list (what `pm2 jlist` prints), asked without starting anything
        entries = pm2_rpc.monitor_data(pm2.home, timeout_s)
        return [Piece("pm2/jlist.json", json.dumps(entries) + "\n", DocumentKind.JSON)]
    except pm2_rpc.DaemonUnreachable as gone:
        return [Skipped("pm2 jlist", f"{gone}; see dump.pm2 for what it would resurrect")]
    except pm2_rpc.RpcProtocolError:
        pass  # a PM2 that speaks otherwise on its socket: ask its CLI, as before
    outputs: list[proc.Result] = []

    def keep(argv: proc.Argv, *, timeout: float, cwd: str | Path | None = None,
             env: Mapping[str, str] | None = None, check: bool = True) -> proc.Result:
        result = proc.run(argv, timeout=timeout, cwd=cwd, env=env, check=check)
        outputs.append(result)
        return result

    # Through the adapter (its argv, PM2_HOME, and its parser as the validity check), keeping
    # the raw output: the bundle's reader wants PM2's own JSON, not our model of it.
    dataclasses.replace(pm2, timeout=timeout_s, runner=keep, daemon_list=None).jlist()
    return [Piece("pm2/jlist.json", _json_text(outputs[-1].stdout), DocumentKind.JSON)]


def dump(settings: Settings) -> Gathered:
    path = facts.health_pm2(settings).dump_path
    text = path.read_text(encoding="utf-8", errors="replace")
    return [Piece("pm2/dump.pm2", text, DocumentKind.JSON)]


def _file_name(source: str) -> str:
    return re.sub(r"[^\w.-]", "-", source.replace("/", "-"))


def pm2_log_admission(settings: Settings) -> Callable[[Path, os.stat_result], str | None]:
    """Which PM2 log files a bundle reads: under PM2_HOME/logs, or owned by the PM2 user (who
    owns PM2_HOME). dump.pm2 may name any path, and as root the bundle once packed a 0600 file
    from outside PM2's logs; what PM2's own user could not read stays out."""
    logs_dir = Path(os.path.realpath(settings.pm2.home / "logs"))
    try:
        owner: int | None = settings.pm2.home.stat().st_uid
    except OSError:
        owner = None

    def admit(real: Path, info: os.stat_result) -> str | None:
        if real.is_relative_to(logs_dir) or info.st_uid == owner:
            return None
        return (f"not read: {real} is outside {logs_dir} and owned by uid {info.st_uid}, not "
                f"by the PM2 user (uid {owner if owner is not None else 'unknown'})")

    return admit


def logs(settings: Settings, lines: int | None) -> Gathered:
    from vmkeeper.health.logs import read_logs

    report = read_logs(settings, None, lines, admit=pm2_log_admission(settings))
    gathered: list[Piece | Skipped] = []
    for source in report.sources:
        if not source.found:
            gathered.append(Skipped(f"log {source.source}", f"{source.path} does not exist"))
        elif source.error:
            gathered.append(Skipped(f"log {source.source}", f"{source.path}: {source.error}"))
        else:
            text = "".join(line.text + "\n" for line in report.lines
                           if line.source == source.source)
            gathered.append(Piece(f"logs/{_file_name(source.source)}.log", text))
    return gathered


def unit_journal(settings: Settings, timeout_s: float) -> Gathered:
    unit = systemd.unit_name(settings.pm2.unit)
    if facts.supervisor_mode(settings) != "systemd":
        return [Skipped("pm2 unit journal", "systemd does not supervise PM2 here (PID 1 is "
                        f"{systemd.pid1_name()}, health.supervisor is "
                        f"{settings.health.supervisor}), so there is no journal of {unit}")]
    argv = host_commands.unit_journal_argv(unit, UNIT_JOURNAL_LINES)
    return [Piece(f"journal/{_file_name(unit)}.log",
                  host_commands.output(argv, timeout=timeout_s))]


def oom(settings: Settings, timeout_s: float) -> Gathered:
    from vmkeeper.diagnose.oom import diagnose_oom

    quick = settings.model_copy(update={"diagnose": settings.diagnose.model_copy(
        update={"read_timeout_s": timeout_s})})
    return [json_piece("oom.json", diagnose_oom(quick, since=OOM_WINDOW))]


def listening(timeout_s: float) -> Gathered:
    text, said_by = host_commands.listening_text(timeout=timeout_s)
    return [Piece("host/listening.txt", f"# listening TCP sockets ({said_by})\n{text}")]


def versions(settings: Settings, timeout_s: float) -> Gathered:
    from vmkeeper.health.doctor import pm2_version

    def ffmpeg() -> str:
        from vmkeeper.adapters.ffmpeg import ffmpeg_binary

        argv = host_commands.ffmpeg_version_argv(ffmpeg_binary(settings.media.ffmpeg_path))
        return host_commands.first_line(argv, timeout=timeout_s)

    def pm2() -> str:
        found = pm2_version(settings.pm2.bin)
        if found is None:
            raise CommandNotFound(f"`{settings.pm2.bin}` was not found on PATH")
        return found

    askers: dict[str, Callable[[], str]] = {
        "node": lambda: host_commands.node_version(timeout=timeout_s),
        "npm": lambda: host_commands.first_line(host_commands.npm_version_argv(),
                                                timeout=timeout_s),
        "pm2": pm2,
        "ffmpeg": ffmpeg,
    }
    found: dict[str, str | None] = {}
    gathered: list[Piece | Skipped] = []
    for name, ask in askers.items():
        try:
            found[name] = ask()
        except Exception as error:  # noqa: BLE001 - one missing program is a skip, not a failure
            found[name] = None
            gathered.append(Skipped(f"{name} version", reason_of(error)))
    gathered.insert(0, json_piece("versions.json", found))
    return gathered
