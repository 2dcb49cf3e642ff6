"""`vmkeeper logs`: the last lines of each PM2 app's logs and Apache's error log, redacted.

Read straight from the files, never through `pm2 logs`: that command tails forever (the
runbook's "Press Ctrl-C" trap) and starts a PM2 daemon when none runs.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vmkeeper.adapters.pm2 import Pm2App
from vmkeeper.errors import UsageError
from vmkeeper.health import facts as gathering
from vmkeeper.settings import Settings

_CHUNK = 64 * 1024


# Which log files a caller accepts, decided on the opened file (its real path and its owner),
# so a path swapped after a check cannot slip through: a reason to skip it, or None to read it.
Admit = Callable[[Path, os.stat_result], str | None]


def tail_lines(path: Path, count: int, admit: Admit | None = None) -> list[str]:
    """The last ``count`` lines of ``path``, reading backwards from the end (logs grow large).

    Raises OSError for a file that is not a regular file or that ``admit`` refuses (its reason
    as the strerror).
    """
    # O_NONBLOCK: a FIFO named as a log must not hang the read; fstat then refuses it.
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(descriptor)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(0, "not a regular file, not read")
        refusal = admit(Path(os.readlink(f"/proc/self/fd/{descriptor}")), info) if admit else None
        if refusal:
            raise OSError(0, refusal)
        handle.seek(0, os.SEEK_END)
        position = handle.tell()
        data = b""
        while position > 0 and data.count(b"\n") <= count:
            step = min(_CHUNK, position)
            position -= step
            handle.seek(position)
            data = handle.read(step) + data
    lines = data.decode("utf-8", errors="replace").splitlines()
    return lines[-count:] if count else []


def redactor(apps: list[Pm2App] | None = None) -> Callable[[str], str]:
    """The one redactor (imported when logs are read, not for every command's start); with
    ``apps``, the secret values of their environments are swept out too, wherever a log
    prints them without their name (the bundle's rule: diagnose/secret_sweep.py)."""
    import json

    from vmkeeper.diagnose.secret_sweep import known_secrets, redact_file
    from vmkeeper.redact import DocumentKind, redact_text

    secrets = known_secrets(json.dumps(dict(app.env)) for app in apps or [])
    if not secrets:
        return redact_text
    return lambda line: redact_file(line, DocumentKind.TEXT, secrets)[0]


@dataclass(frozen=True)
class LogLine:
    source: str
    text: str


@dataclass(frozen=True)
class LogSource:
    source: str
    path: str
    found: bool
    lines: int
    error: str | None = None


@dataclass(frozen=True)
class LogsReport:
    lines: list[LogLine]
    sources: list[LogSource]


def _pm2_log_name(name: str) -> str:
    # PM2 names log files after the app with anything but word characters replaced by '-'.
    return re.sub(r"[^\w\-]", "-", name)


def log_files(settings: Settings, app: str | None, live: list[Pm2App] | None
              ) -> list[tuple[str, Path]]:
    expected = [a.name for a in settings.app_roles().values()]
    names = [app] if app else expected + sorted(
        {a.name for a in live or []} - set(expected))
    by_name = {a.name: a for a in live or []}
    files: list[tuple[str, Path]] = []
    logs_dir = settings.pm2.home / "logs"
    for name in names:
        entry = by_name.get(name)
        out = entry.out_log if entry and entry.out_log else \
            logs_dir / f"{_pm2_log_name(name)}-out.log"
        err = entry.err_log if entry and entry.err_log else \
            logs_dir / f"{_pm2_log_name(name)}-error.log"
        files += [(f"{name}/out", out), (f"{name}/error", err)]
    if app is None:
        files.append(("apache/error", settings.proxy.error_log))
    return files


def read_logs(settings: Settings, app: str | None = None, lines: int | None = None,
              admit: Admit | None = None) -> LogsReport:
    """Raises UsageError for an app that is neither expected nor known to PM2. ``admit`` is
    asked about each PM2 log file (not Apache's, which the settings name)."""
    count = lines or settings.health.log_lines
    pm2 = gathering.health_pm2(settings)
    live: list[Pm2App] | None = None
    if pm2.daemon_pid() is not None:
        try:
            live = pm2.jlist()
        except Exception:  # noqa: BLE001 - logs must come out even when PM2 is wedged
            live = None
    if live is None:
        try:
            live = pm2.read_dump()
        except Exception:  # noqa: BLE001
            live = None
    known = {a.name for a in settings.app_roles().values()} | {a.name for a in live or []}
    if app is not None and app not in known | {"apache", "proxy"}:
        raise UsageError(f"no app named {app!r}: use one of {', '.join(sorted(known))} or apache.")
    redact = redactor(live)
    out: list[LogLine] = []
    sources: list[LogSource] = []
    only_apache = app in ("apache", "proxy")
    files = ([("apache/error", settings.proxy.error_log)] if only_apache
             else log_files(settings, app, live))
    for source, path in files:
        try:
            found = tail_lines(path, count, None if source == "apache/error" else admit)
        except FileNotFoundError:
            sources.append(LogSource(source, str(path), False, 0))
            continue
        except OSError as error:
            sources.append(LogSource(source, str(path), True, 0, error.strerror or str(error)))
            continue
        sources.append(LogSource(source, str(path), True, len(found)))
        out.extend(LogLine(source, redact(line)) for line in found)
    return LogsReport(out, sources)
