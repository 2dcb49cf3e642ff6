"""Evidence at the moment an incident opens: the health report, `diagnose oom` over the last
minutes, the last PM2 log lines of the broken apps (redacted), and a redacted support bundle —
files under the incident's folder, linked from the incident. Each piece is best effort: an
incident is opened and alerted even when the evidence cannot all be had."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from vmkeeper.atomic import write_atomic
from vmkeeper.errors import VmkeeperError
from vmkeeper.health.model import HealthReport, Layer, Status
from vmkeeper.jsonable import json_text
from vmkeeper.settings import LoadedSettings, Settings
from vmkeeper.watch.store import Incident


def _broken_apps(report: HealthReport | None) -> list[str]:
    if report is None:
        return []
    return sorted({c.name.removeprefix("pm2:") for c in report.checks
                   if c.layer is Layer.APPS and c.status is Status.CRITICAL})


def _logs(settings: Settings, apps: list[str], folder: Path) -> Path:
    from vmkeeper.health.logs import read_logs

    lines: list[str] = []
    wanted: list[str | None] = list(apps) or [None]  # None: every app's logs
    for app in wanted:
        report = read_logs(settings, app, lines=50)
        lines += [f"{line.source}: {line.text}" for line in report.lines]
    path = folder / "pm2-logs.txt"
    write_atomic(path, "\n".join(lines) + "\n")
    return path


def _oom(settings: Settings, folder: Path) -> Path:
    from vmkeeper.health.model import Diagnosis
    from vmkeeper.recover import oom_evidence

    notes = oom_evidence(settings, Diagnosis(None, None, (), None, ""))
    path = folder / "oom.txt"
    write_atomic(path, "\n".join(notes or ["no OOM kill in the kernel log"]) + "\n")
    return path


def _bundle(settings: Settings, folder: Path) -> Path:
    from vmkeeper.diagnose.bundle_sources import standard_bundle

    return standard_bundle(LoadedSettings(settings, {}, None), output=folder / "bundle.tar.gz",
                           timeout_s=10).path


def capture(settings: Settings, incident: Incident, report: HealthReport | None,
            store_folder: Path) -> list[str]:
    folder = store_folder / "evidence" / incident.id
    folder.mkdir(parents=True, exist_ok=True)
    found: list[str] = []
    if report is not None:
        path = folder / "health.json"
        write_atomic(path, json_text(report))
        found.append(str(path))
    pieces: list[Callable[[], Path]] = [
        lambda: _oom(settings, folder),
        lambda: _logs(settings, _broken_apps(report), folder),
        lambda: _bundle(settings, folder)]
    for piece in pieces:
        try:
            found.append(str(piece()))
        except (VmkeeperError, OSError) as error:
            failed = folder / "errors.txt"
            with failed.open("a") as out:
                out.write(f"{error}\n")
    return found
