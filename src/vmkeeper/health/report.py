"""Health results outside the terminal: Prometheus text (for node_exporter's textfile
collector) and the restart counts kept between runs (to tell flapping from old restarts)."""

from __future__ import annotations

import contextlib
import json
import time
from pathlib import Path

from vmkeeper.atomic import write_atomic
from vmkeeper.health.model import HealthReport

RESTARTS_FILE = "health-restarts.json"


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def prometheus_text(report: HealthReport, now: float | None = None) -> str:
    lines = [
        "# HELP vmkeeper_health_status Overall health: 0 ok, 1 warn, 2 critical, 3 unknown.",
        "# TYPE vmkeeper_health_status gauge",
        f"vmkeeper_health_status {report.exit_code}",
        "# HELP vmkeeper_health_last_run_timestamp_seconds When this health run finished.",
        "# TYPE vmkeeper_health_last_run_timestamp_seconds gauge",
        f"vmkeeper_health_last_run_timestamp_seconds {now if now is not None else time.time():.3f}",
        "# HELP vmkeeper_health_check_status One check: 0 ok, 1 warn, 2 critical, 3 unknown.",
        "# TYPE vmkeeper_health_check_status gauge",
    ]
    for check in report.checks:
        lines.append(
            f'vmkeeper_health_check_status{{check="{_label(check.name)}",'
            f'layer="{_label(check.layer.value)}"}} {check.status.exit_code}'
        )
    apps = [c for c in report.checks if c.name.startswith("pm2:")
            and isinstance(c.observed, dict)]
    if apps:
        lines += ["# HELP vmkeeper_pm2_app_restarts Restarts PM2 counted for the app.",
                  "# TYPE vmkeeper_pm2_app_restarts gauge"]
        lines += [f'vmkeeper_pm2_app_restarts{{app="{_label(c.name[4:])}"}} '
                  f'{c.observed.get("restarts") or 0}' for c in apps]
        lines += ["# HELP vmkeeper_pm2_app_memory_bytes Resident memory PM2 reports.",
                  "# TYPE vmkeeper_pm2_app_memory_bytes gauge"]
        lines += [f'vmkeeper_pm2_app_memory_bytes{{app="{_label(c.name[4:])}"}} '
                  f'{c.observed.get("memory_bytes") or 0}' for c in apps]
    lines += ["# HELP vmkeeper_health_duration_seconds Wall time of the health run.",
              "# TYPE vmkeeper_health_duration_seconds gauge",
              f"vmkeeper_health_duration_seconds {report.seconds:.3f}"]
    return "\n".join(lines) + "\n"


def write_prometheus(path: Path, report: HealthReport) -> None:
    """Atomically (vmkeeper.atomic): the collector never reads half a file. 0644, because
    node_exporter reads it as its own user."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, prometheus_text(report), mode=0o644)


def load_restarts(state_dir: Path) -> dict[str, int]:
    try:
        data = json.loads((state_dir / RESTARTS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}


def save_restarts(state_dir: Path, report: HealthReport) -> None:
    counts = {c.name[4:]: c.observed["restarts"] for c in report.checks
              if c.name.startswith("pm2:") and isinstance(c.observed, dict)
              and isinstance(c.observed.get("restarts"), int)}
    if not counts:
        return
    # Best effort: a read-only state_dir must not turn a health check into a failure.
    with contextlib.suppress(OSError):
        state_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(state_dir / RESTARTS_FILE, json.dumps(counts, sort_keys=True) + "\n")
