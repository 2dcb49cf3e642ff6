"""Benchmark: the watcher's own cost over N cycles of a healthy sandbox — RSS (peak), CPU as a
share of one core (its own, and with its children: `pm2 jlist`, `node -v`), and the cycle's
look p50/p95 — for the default cheap/heavy split against a baseline that gathers every check
every cycle (watch.heavy_every = 1; the ratio column).

The watcher runs with its own state folder beside the sandbox's (`sandbox up --no-watch`, or
the sandbox's own watcher left running: it is not measured). Run it niced on a shared machine:

    vmkeeper sandbox up --dir .bench-sandbox --base-port 21120 --no-watch
    nice python bench/watch.py --dir .bench-sandbox [--cycles 24] [--interval 5]
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from vmkeeper.sandbox.layout import Layout
from vmkeeper.sandbox.service import base_port_of

_GAUGE = r"^{name} (\S+)$"


@dataclass(frozen=True)
class Run:
    label: str
    cycles: int
    seconds: float
    hwm_mib: float
    cpu_own_pct: float
    cpu_all_pct: float
    cheap: list[float]  # look durations of the cycles that carried the heavy facts
    heavy: list[float]


def _gauge(text: str, name: str) -> float | None:
    found = re.search(_GAUGE.format(name=name), text, re.MULTILINE)
    return float(found.group(1)) if found else None


def _hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure(config: Path, label: str, sets: list[str], cycles: int) -> Run:
    state = Path(tempfile.mkdtemp(prefix="bench-watch-"))
    textfile = state / "watch.prom"
    argv = [sys.executable, "-m", "vmkeeper", "--config", str(config)]
    for value in [f"state_dir={state}", f"watch.textfile={textfile}", *sets]:
        argv += ["--set", value]
    child = subprocess.Popen([*argv, "watch"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    process = psutil.Process(child.pid)
    seen: dict[float, tuple[float, bool]] = {}  # cycle time -> (look seconds, heavy)
    try:
        while not textfile.exists():  # the first cycle: imports and a full look, not counted
            time.sleep(0.05)
        first = _gauge(textfile.read_text(), "vmkeeper_health_last_run_timestamp_seconds")
        started, cpu0 = time.monotonic(), process.cpu_times()
        while len(seen) < cycles:
            text = textfile.read_text()
            at = _gauge(text, "vmkeeper_health_last_run_timestamp_seconds")
            took = _gauge(text, "vmkeeper_health_duration_seconds")
            heavy_at = _gauge(text, "vmkeeper_watch_heavy_last_run_timestamp_seconds")
            if at is not None and at != first and took is not None and at not in seen:
                seen[at] = (took, heavy_at == at)
            time.sleep(0.1)
        seconds, cpu1 = time.monotonic() - started, process.cpu_times()
        hwm = _hwm_mib(child.pid)
    finally:
        child.terminate()
        child.wait(30)
    own = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    kids = (cpu1.children_user - cpu0.children_user) + (cpu1.children_system
                                                        - cpu0.children_system)
    return Run(label, len(seen), seconds, hwm, 100 * own / seconds,
               100 * (own + kids) / seconds,
               [t for t, heavy in seen.values() if not heavy],
               [t for t, heavy in seen.values() if heavy])


def _q(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) < 3:
        return max(values) * 1000
    return statistics.quantiles(values, n=100)[q - 1] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--cycles", type=int, default=24)
    parser.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args()
    folder = args.dir.resolve()
    layout = Layout.at(folder, base_port_of(folder))
    common = [f"watch.interval_s={args.interval:g}"]
    runs = [measure(layout.config, "every check every cycle (heavy_every=1)",
                    [*common, "watch.heavy_every=1"], args.cycles),
            measure(layout.config, "cheap/heavy split (default heavy_every=12)", common,
                    args.cycles)]
    base = runs[0]
    print(f"{args.cycles} healthy cycles at watch.interval_s={args.interval:g}; ratio vs "
          f"{base.label}")
    rows = [("", *[r.label for r in runs])]

    def row(name: str, values: list[float], unit: str, fmt: str = ".1f") -> None:
        cells = [f"{v:{fmt}} {unit}" + ("" if r is base or not base_v else
                                        f" (×{v / base_v:.2f})")
                 for r, v, base_v in zip(runs, values, [values[0]] * len(values), strict=True)]
        rows.append((name, *cells))

    row("peak RSS (VmHWM)", [r.hwm_mib for r in runs], "MiB")
    row("CPU, the watcher alone", [r.cpu_own_pct for r in runs], "% of a core", ".2f")
    row("CPU, with its children (pm2 jlist…)", [r.cpu_all_pct for r in runs], "% of a core",
        ".2f")
    every = [sorted(r.cheap + r.heavy) for r in runs]
    row("look p50, every cycle", [_q(v, 50) for v in every], "ms", ".0f")
    row("look p95, every cycle", [_q(v, 95) for v in every], "ms", ".0f")
    row("look p50, heavy cycles", [_q(r.heavy, 50) for r in runs], "ms", ".0f")
    row("look p50, cheap cycles", [_q(r.cheap, 50) for r in runs], "ms", ".0f")
    rows.append(("cycles heavy / cheap", *[f"{len(r.heavy)} / {len(r.cheap)}" for r in runs]))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for cells in rows:
        print("  ".join(f"{c:<{w}}" for c, w in zip(cells, widths, strict=True)).rstrip())


if __name__ == "__main__":
    main()
