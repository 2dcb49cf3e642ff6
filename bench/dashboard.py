"""Benchmark: the dashboard's overview rendered server-side, and what the first page weighs.

Usage: python bench/dashboard.py --config SANDBOX/vmkeeper.toml [--runs 50]
(against a sandbox: `vmkeeper sandbox up --dir D --base-port B`). Prints one table.
The budget is the issue's: the overview in <= 100 ms (p50 and p99 shown), the first page
<= 150 KB transferred (HTML, CSS, JS, icon). Cold: the request gathers itself; warm: within
routes.FRESH_S of a gather (one gather serves every viewer that long). Baseline: run_health
alone, which the overview calls: the ratio is what the page adds on top of it.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from vmkeeper.agent import auth
from vmkeeper.dashboard import routes, sources
from vmkeeper.health.service import run_health
from vmkeeper.settings import load_settings


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=50)
    args = parser.parse_args()
    settings = load_settings(args.config, env={}).settings
    state = Path(tempfile.mkdtemp(prefix="vmk-dash-bench-"))
    app = FastAPI()
    board = routes.install(app, routes.Sessions(state), sources.from_settings(settings))
    client = TestClient(app)
    client.post("/login", data={"token": auth.add(state, "bench", auth.Scope.READ).token})
    health: list[float] = []
    cold: list[float] = []
    warm: list[float] = []
    for _ in range(args.runs):
        started = time.perf_counter()
        run_health(settings, remember=False)
        health.append((time.perf_counter() - started) * 1000)
        board._latest = None  # cold: this request gathers (health + PM2 status) itself
        started = time.perf_counter()
        client.get("/")
        cold.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()  # warm: within FRESH_S of a gather, as a poll usually is
        html = client.get("/").content
        warm.append((time.perf_counter() - started) * 1000)
    weight = len(html) + sum(len(client.get(f"/static/{name}").content)
                             for name in ("app.css", "app.js", "favicon.svg"))
    print(f"{'what':<34}{'p50 ms':>9}{'p99 ms':>9}{'ratio p50':>11}")
    base = statistics.median(health)
    for name, values in (("run_health (baseline)", health), ("GET / cold (gather + render)", cold),
                         ("GET / warm (render)", warm)):
        print(f"{name:<34}{percentile(values, .5):>9.1f}{percentile(values, .99):>9.1f}"
              f"{percentile(values, .5) / base:>11.2f}")
    print(f"first page transferred: {weight / 1024:.1f} KB (budget 150 KB), runs: {args.runs}")


if __name__ == "__main__":
    main()
