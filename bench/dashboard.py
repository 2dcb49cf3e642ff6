"""Benchmark: the dashboard's overview rendered server-side, and what the first page weighs.

Usage: python bench/dashboard.py --config SANDBOX/vmkeeper.toml [--runs 50]
(against a sandbox: `vmkeeper sandbox up --dir D --base-port B`). Prints one table.
The budget is the issue's: the overview in <= 100 ms (p50 and p99 shown), the first page
<= 150 KB transferred (HTML, CSS, JS, icon).

Rows: `run_health` alone (the baseline: what one gather costs); the overview as it was before
the warm report, gathering on its own request (health + PM2 status, then render: measured by
calling the gather the keeper runs, then rendering); and the overview as served now, read from
the report the agent keeps warm while its background thread keeps gathering every REFRESH_S on
the same 2 cores (a real `GET /`, each run `--gap` seconds apart so gathers and requests meet as
they do on the VM). Ratios are p50 against the baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
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


def timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return (time.perf_counter() - started) * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--gap", type=float, default=0.2, help="seconds between warm requests")
    args = parser.parse_args()
    settings = load_settings(args.config, env={}).settings
    state = Path(tempfile.mkdtemp(prefix="vmk-dash-bench-"))
    app = FastAPI()
    board = routes.install(app, routes.Sessions(state), sources.from_settings(settings))
    client = TestClient(app)
    client.post("/login", data={"token": auth.add(state, "bench", auth.Scope.READ).token})
    health = [timed(lambda: run_health(settings, remember=False)) for _ in range(args.runs)]
    gathering = [timed(lambda: board.page("overview.html", None, stale_s=routes.STALE_S,
                                          live=routes.Live(board._gather(), 0, False, None)))
                 for _ in range(args.runs)]
    client.get("/")  # the first look waits for the first gather; from here the thread gathers
    gathers_before = board.warm.computed
    warm: list[float] = []
    started = time.monotonic()
    for _ in range(args.runs):
        warm.append(timed(lambda: client.get("/")))
        time.sleep(args.gap)
    gathers = board.warm.computed - gathers_before
    html = client.get("/").content
    board.warm.stop()
    weight = len(html) + sum(len(client.get(f"/static/{name}").content)
                             for name in ("app.css", "app.js", "favicon.svg"))
    base = statistics.median(health)
    print(f"{'what':<44}{'p50 ms':>9}{'p99 ms':>9}{'ratio p50':>11}")
    for name, values in (("run_health (baseline)", health),
                         ("overview gathering per request (before)", gathering),
                         ("GET / from the warm report (now)", warm)):
        print(f"{name:<44}{percentile(values, .5):>9.1f}{percentile(values, .99):>9.1f}"
              f"{percentile(values, .5) / base:>11.2f}")
    print(f"background gathers during the warm runs: {gathers} in "
          f"{time.monotonic() - started:.1f} s (every {routes.REFRESH_S:g} s)")
    print(f"first page transferred: {weight / 1024:.1f} KB (budget 150 KB), runs: {args.runs}, "
          f"load: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
