"""Benchmark: failed requests through Apache while `vmkeeper deploy` switches releases.

A steady stream of GETs to the site (through the sandbox's Apache, loopback only) runs while a
deploy of the sandbox's real Next.js app goes through its eight steps; the runbook's switch is
`pm2 delete` + `pm2 start`, so some requests fail — this measures how many, honestly. Then the
same deploy with Apache's ProxyPass at its default `retry` (60 s; the sandbox renders retry=0):
a backend Apache once failed to reach stays in error that long, however fast it comes back.

Figures per run: requests sent, failed (5xx or no answer), the longest gap between two
successful answers, the deploy's wall time, and its own overhead: wall time minus npm ci, the
build and the app's start (time from `pm2 start` until it answered).

    python bench/deploy_switch.py [--dir DIR] [--base-port 21000] [--rate 20] [--keep]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from vmkeeper import logs, proc
from vmkeeper.adapters import apache as apache_adapter
from vmkeeper.sandbox import service
from vmkeeper.sandbox.layout import Layout

TAIL_AFTER_DEPLOY_S = 75.0  # longer than Apache's default retry (60 s), so its effect shows
SETTLE_S = 5.0              # this long of unbroken success after the deploy ends the run


@dataclass
class Load:
    """A bounded, steady request stream; records (time, ok) per request."""

    url: str
    rate: float
    samples: list[tuple[float, bool]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        interval = 1.0 / self.rate
        with httpx.Client(timeout=5.0) as client:
            next_at = time.monotonic()
            while not self._stop.is_set():
                try:
                    ok = client.get(self.url).status_code < 500
                except httpx.HTTPError:
                    ok = False
                self.samples.append((time.monotonic(), ok))
                next_at += interval
                self._stop.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()

    def figures(self) -> tuple[int, int, float]:
        failed = sum(1 for _t, ok in self.samples if not ok)
        longest, last_ok = 0.0, self.samples[0][0] if self.samples else 0.0
        for moment, ok in self.samples:
            if ok:
                longest = max(longest, moment - last_ok)
                last_ok = moment
        if self.samples and not self.samples[-1][1]:
            longest = max(longest, self.samples[-1][0] - last_ok)
        return len(self.samples), failed, longest


def deploy_under_load(config: Path, url: str, rate: float) -> dict[str, Any]:
    load = Load(url, rate)
    thread = threading.Thread(target=load.run, daemon=True)
    thread.start()
    time.sleep(2.0)  # a baseline of good answers before the deploy starts
    started = time.monotonic()
    result = proc.run([sys.executable, "-m", "vmkeeper", "--config", str(config), "deploy",
                       "--json"], timeout=1800, check=False)
    wall = time.monotonic() - started
    # Keep the stream going until it has answered SETTLE_S without a failure (capped).
    ended, cap = time.monotonic(), time.monotonic() + TAIL_AFTER_DEPLOY_S
    while time.monotonic() < cap:
        last_failure = max((t for t, ok in list(load.samples) if not ok), default=ended)
        if time.monotonic() - max(last_failure, ended) >= SETTLE_S:
            break
        time.sleep(0.5)
    load.stop()
    thread.join(timeout=10)
    data = json.loads(result.stdout)
    if not data.get("ok"):
        raise SystemExit(f"the deploy failed: {data.get('error')}")
    steps = {s["name"]: s for s in data["steps"]}
    match = re.search(r"serving after ([0-9.]+) s", steps["switch"].get("detail", ""))
    app_start = float(match.group(1)) if match else 0.0
    sent, failed, gap = load.figures()
    return {
        "sent": sent, "failed": failed, "gap": gap, "wall": wall,
        "install": steps["install"]["seconds"], "build": steps["build"]["seconds"],
        "app_start": app_start,
        "overhead": wall - steps["install"]["seconds"] - steps["build"]["seconds"] - app_start,
        "own_failed": data.get("failed_requests"), "own_gap": data.get("longest_gap_s"),
    }


def set_retry(layout: Layout, apache: apache_adapter.Apache, default_retry: bool) -> None:
    """Re-render the sandbox's Apache config with retry=0 (ours) or without it (Apache's 60 s)."""
    routes = [apache_adapter.ProxyRoute("/api", layout.ports.backend),
              apache_adapter.ProxyRoute("/", layout.ports.frontend)]
    text = apache_adapter.render_config(root=layout.apache_root, port=layout.ports.proxy,
                                        routes=routes)
    if default_retry:
        text = text.replace(" retry=0", "")
    layout.apache_config.write_text(text)
    apache.stop()
    apache.start()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--base-port", type=int, default=21000)
    parser.add_argument("--rate", type=float, default=20.0, help="requests per second")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up")
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="vmkeeper-bench-"))
    layout = Layout.at(directory, args.base_port)
    rows: list[tuple[str, dict[str, Any]]] = []
    try:
        print(f"sandbox up in {directory} (base port {args.base_port})…", file=sys.stderr)
        service.up(layout)
        settings = service.sandbox_settings(layout)
        apache = service.apache_for(layout, settings.proxy.bin)
        url = settings.public_url + "/"
        print("deploy with ProxyPass retry=0 (the sandbox's config)…", file=sys.stderr)
        rows.append(("Next.js, retry=0", deploy_under_load(layout.config, url, args.rate)))
        print("deploy with ProxyPass's default retry (60 s)…", file=sys.stderr)
        set_retry(layout, apache, default_retry=True)
        time.sleep(1.0)
        rows.append(("Next.js, retry default", deploy_under_load(layout.config, url, args.rate)))
        set_retry(layout, apache, default_retry=False)
    finally:
        if not args.keep:
            service.down(layout)
            if args.dir is None:
                shutil.rmtree(directory, ignore_errors=True)
    header = (f"{'run':<24}{'sent':>6}{'failed':>8}{'longest gap':>13}{'deploy':>9}"
              f"{'npm ci':>8}{'build':>8}{'start':>7}{'overhead':>10}{'own watch':>16}")
    print(f"steady GETs through Apache at {args.rate:g}/s during `vmkeeper deploy` "
          "(times in seconds; own watch = the deploy's own probe: failed / longest gap)")
    print(header)
    for name, r in rows:
        own = f"{r['own_failed']} / {r['own_gap']:.2f}" if r["own_failed"] is not None else "-"
        print(f"{name:<24}{r['sent']:>6}{r['failed']:>8}{r['gap']:>13.2f}{r['wall']:>9.1f}"
              f"{r['install']:>8.1f}{r['build']:>8.1f}{r['app_start']:>7.1f}"
              f"{r['overhead']:>10.1f}{own:>16}")
    return 0


if __name__ == "__main__":
    logs.configure()  # an entry point: importing vmkeeper configures nothing
    sys.exit(main())
