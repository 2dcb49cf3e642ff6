"""The Prometheus textfile each cycle: health's metrics plus, per check, when it last passed
(vmkeeper_last_success_timestamp_seconds), so a stuck watcher or a silent check is alertable."""

from __future__ import annotations

import json

from vmkeeper import telemetry
from vmkeeper.atomic import write_atomic
from vmkeeper.health.checks import heavy_check
from vmkeeper.health.model import HealthReport, Status
from vmkeeper.health.report import prometheus_text
from vmkeeper.settings import Settings


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write_textfile(settings: Settings, report: HealthReport, now: float, *,
                   heavy_at: float | None = None, families: str | None = None) -> str:
    """``heavy_at``: when the heavy checks were last gathered (None: this cycle). Before now,
    they were judged on carried facts and did not pass now (their last success stays).
    ``families``: the telemetry families' text to carry (the watcher renders them anew only
    at the exporter's period or on a change); None renders them now. Returns that text."""
    carried = heavy_at is not None and heavy_at < now
    path = settings.watch.textfile
    if path is None:
        return families or ""
    memory = settings.state_dir / "watch" / "last_success.json"
    try:
        last: dict[str, float] = json.loads(memory.read_text())
    except (OSError, ValueError):
        last = {}
    last.update({c.name: now for c in report.checks
                 if c.status is Status.OK and not (carried and heavy_check(c.name))})
    memory.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(memory, json.dumps(last))
    lines = ["# HELP vmkeeper_last_success_timestamp_seconds When the check last passed.",
             "# TYPE vmkeeper_last_success_timestamp_seconds gauge"]
    lines += [f'vmkeeper_last_success_timestamp_seconds{{check="{_label(name)}"}} {at:.3f}'
              for name, at in sorted(last.items())]
    lines += ["# HELP vmkeeper_watch_heavy_last_run_timestamp_seconds When the heavy checks "
              "(disk, dump, node, Apache's config) were last gathered.",
              "# TYPE vmkeeper_watch_heavy_last_run_timestamp_seconds gauge",
              f"vmkeeper_watch_heavy_last_run_timestamp_seconds {heavy_at or now:.3f}"]
    health = prometheus_text(report, now)
    # The telemetry families too (issue 15), less those health's own text already has.
    if families is None:
        families = telemetry.prometheus_text(_families_in(health))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, health + "\n".join(lines) + "\n" + families, mode=0o644)
    return families


def _families_in(text: str) -> frozenset[str]:
    return frozenset(line.split()[2] for line in text.splitlines()
                     if line.startswith("# TYPE ") and len(line.split()) > 2)
