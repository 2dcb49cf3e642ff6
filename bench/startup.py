"""Benchmark: how long vmkeeper takes to start, beside the runbook's commands typed by hand.

Usage: python bench/startup.py --config SANDBOX/vmkeeper.toml [--runs 7]
(against a sandbox: `vmkeeper sandbox up --dir D --base-port B`). Prints one table.

For `--help`, `config show` and `health --json`: the import time Python itself reports
(`python -X importtime -m vmkeeper …`, the sum of the top-level imports) and the wall time of the
installed `vmkeeper` script, and its CPU seconds (user + system, with every program it ran):
CPU time hardly moves with the load of a shared machine, where wall time does. Baseline: the
runbook's "Health Checks" commands run one after
another, as a person would (df -h, df -ih, free -h, ss -ltnp, curl -I ×3, pm2 status) — what
`vmkeeper health` replaces. Ratios are against that baseline's median, from the same run. Each
figure is the median of --runs runs (min beside it: the machine is shared, and load only adds).
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
from health import runbook_commands  # bench/health.py: the baseline's commands, in one place

from vmkeeper import logs, proc
from vmkeeper.settings import load_settings

VMKEEPER = str(Path(sys.executable).with_name("vmkeeper"))

COMMANDS: list[tuple[str, list[str]]] = [
    ("vmkeeper --help", ["--help"]),
    ("vmkeeper config show", ["config", "show"]),
    ("vmkeeper health --json", ["health", "--json"]),
]


def import_ms(stderr: str) -> float:
    """The total of `-X importtime`: the cumulative times of the top-level imports, in ms."""
    total_us = 0
    for line in stderr.splitlines():
        parts = line.split("|")
        if not line.startswith("import time:") or len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        # A nested import is indented two spaces per level under its importer's line.
        if not parts[2].startswith("  "):
            total_us += int(parts[1])
    return total_us / 1000


def measure_import(args: list[str], env: dict[str, str]) -> float:
    result = proc.run([sys.executable, "-X", "importtime", "-m", "vmkeeper", *args],
                      timeout=120, env=env, check=False)
    return import_ms(result.stderr)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _exporters() -> list[psutil.Process]:
    """health's detached telemetry exporters still running (telemetry/later.py)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        if "vmkeeper.telemetry.later" in " ".join(process.info["cmdline"] or []):
            found.append(process)
    return found


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds (user + system, the program and everything it waited for).
    Afterwards, waits until the detached exporter a health run leaves has finished, so the
    next run does not share the CPU with it (monitoring runs health once a minute)."""
    cpu, started = _children_cpu(), time.monotonic()
    proc.run(argv, timeout=120, env=env, check=False)
    wall, used = time.monotonic() - started, _children_cpu() - cpu
    psutil.wait_procs(_exporters(), timeout=10)
    return wall, used


def exporter_cost(env: dict[str, str]) -> tuple[float, float]:
    """The detached exporter of one health run, run in the foreground: wall and CPU."""
    from vmkeeper.telemetry import later

    handed: list[bytes] = []
    real = proc.detach
    proc.detach = lambda *_a, **kw: handed.append(kw["input"]) or 0  # type: ignore[assignment]
    try:
        settings = load_settings(env["VMKEEPER_CONFIG"]).settings
        later.export_later(settings, "health", time.time_ns(), ok=True,
                           figures={"checks": [], "probes": [], "apps": []})
    finally:
        proc.detach = real  # type: ignore[assignment]
    cpu, started = _children_cpu(), time.monotonic()
    proc.run([sys.executable, "-m", "vmkeeper.telemetry.later"], timeout=60,
             input=handed[0].decode(), check=False)
    return time.monotonic() - started, _children_cpu() - cpu


def sampled(runs: int, fn: Callable[[], tuple[float, float]]) -> tuple[float, float, float]:
    """Median wall, min wall, median CPU."""
    samples = [fn() for _ in range(runs)]
    walls = [w for w, _ in samples]
    return statistics.median(walls), min(walls), statistics.median(c for _, c in samples)


def _sequence(commands: list[tuple[list[str], dict[str, str]]]) -> tuple[float, float]:
    parts = [timed(list(argv), extra) for argv, extra in commands]
    return sum(w for w, _ in parts), sum(c for _, c in parts)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True, help="the sandbox's vmkeeper.toml")
    parser.add_argument("--runs", type=int, default=7)
    options = parser.parse_args()
    config = options.config.resolve()
    env = {"VMKEEPER_CONFIG": str(config)}

    baseline_commands = [(list(argv), extra) for argv, extra in runbook_commands(config)]
    _sequence(baseline_commands)  # warm the page cache for both sides alike
    baseline = sampled(options.runs, lambda: _sequence(baseline_commands))

    rows: list[tuple[str, float, tuple[float, float, float]]] = []
    for label, args in COMMANDS:
        imported = statistics.median(measure_import(args, env) for _ in range(options.runs))
        rows.append((label, imported,
                     sampled(options.runs, lambda args=args: timed([VMKEEPER, *args], env))))

    print(f"{'command':46} {'import ms':>9} {'wall s':>7} {'min s':>6} {'cpu s':>6} "
          f"{'wall ÷ base':>11} {'cpu ÷ base':>10}")
    for label, imported_ms, (median_s, min_s, cpu_s) in rows:
        print(f"{label:46} {imported_ms:9.0f} {median_s:7.3f} {min_s:6.3f} {cpu_s:6.3f} "
              f"{median_s / baseline[0]:11.2f} {cpu_s / baseline[2]:10.2f}")
    exporter = sampled(options.runs, lambda: exporter_cost(env))
    print(f"{'  health telemetry (detached, after answering)':46} {'-':>9} {exporter[0]:7.3f} "
          f"{exporter[1]:6.3f} {exporter[2]:6.3f} {'-':>11} {'-':>10}")
    print(f"{'baseline: the runbook health commands in turn':46} {'-':>9} {baseline[0]:7.3f} "
          f"{baseline[1]:6.3f} {baseline[2]:6.3f} {1.0:11.2f} {1.0:10.2f}")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"runs={options.runs} python={sys.version.split()[0]} cpus={os.cpu_count()} "
          f"load={load}")


if __name__ == "__main__":
    logs.configure()  # an entry point: importing vmkeeper configures nothing
    main()
