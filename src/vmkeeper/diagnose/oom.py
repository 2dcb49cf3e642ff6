"""`diagnose oom`: the runbook's OOM-Kill Diagnosis as one service.

It reads the kernel log (a file, stdin, or this machine's own: adapters/kernel_log.py), parses
it in a stream (oom_parser.py), keeps the kills inside --since/--until and says what each one
means (oom_verdict.py). The pieces: oom_model.py (what is found), kernel_time.py (the prefixes
and times of log lines).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from vmkeeper.adapters import kernel_log
from vmkeeper.diagnose.kernel_time import local_now, parse_time_bound
from vmkeeper.diagnose.oom_model import OomReport
from vmkeeper.diagnose.oom_parser import OomParser
from vmkeeper.diagnose.oom_verdict import build_report
from vmkeeper.settings import Settings


def diagnose_oom(
    settings: Settings,
    *,
    since: str | None = None,
    until: str | None = None,
    file: Path | None = None,
    stdin: IO[Any] | None = None,
    app_by_pid: Mapping[int, str] | None = None,
    now: datetime | None = None,
) -> OomReport:
    """Find every OOM kill in the kernel log (a file, stdin, or this machine's own log).

    Raises UsageError for an unreadable --since/--until, KernelLogFileError for a file that
    cannot be read and KernelLogUnavailable when no source on this machine can.
    """
    now = now or local_now()
    since_at = parse_time_bound(since, now) if since else None
    until_at = parse_time_bound(until, now) if until else None
    with kernel_log.open_kernel_log(
        since=since, until=until, file=file, stdin=stdin,
        timeout_s=settings.diagnose.read_timeout_s,
    ) as log:
        parser = OomParser(now=now)
        parser.feed_chunks(log.chunks)
        source, skipped, local = log.source, list(log.skipped), log.local
    return build_report(
        parser.finish(),
        settings=settings,
        source=source,
        skipped_sources=skipped,
        since=since_at,
        until=until_at,
        local_ram_kb=kernel_log.machine_ram_kb() if local else None,
        app_by_pid=app_by_pid,
    )
