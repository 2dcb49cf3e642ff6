"""Benchmark: failed requests through Apache while `vmkeeper deploy` and `rollback` switch releases.

Several keep-alive clients (one httpx connection pool each) GET the site through the sandbox's
Apache at a steady total rate while a series of switches runs on the sandbox's real Next.js app:
deploys of fresh commits and rollbacks between the two retained releases, mixed. A request
counts as failed when the status is not 2xx/3xx, the connection fails, or the body is not the
page (its marker is missing). Two arms, each on the same sandbox:

- ``runbook``: Apache without vmkeeper's snippet, so the switch is the runbook's
  (`pm2 delete` + `pm2 start` on FRONT_PORT) — the baseline;
- ``handover``: Apache with the snippet (the sandbox's own config): the zero-downtime switch.

Per arm: switches, requests, failed (by kind: status, connection error, wrong body), the longest
gap between two good answers, the achieved rate, and what the switches' own watch counted
(``failed_requests`` in `deploy --json` / `rollback --json`, summed).

    python bench/deploy_switch.py [--dir DIR] [--base-port 21000] [--rate 60] [--clients 4]
                                  [--switches 10] [--baseline-switches 4] [--keep]
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx

from vmkeeper import logs, proc
from vmkeeper.adapters import apache as apache_adapter
from vmkeeper.sandbox import service
from vmkeeper.sandbox.layout import Layout

MARKER = "vmkeeper sandbox"  # in every page of the sandbox's Next.js app
SETTLE_S = 3.0


@dataclass
class Client:
    """One keep-alive client at ``rate`` requests/s; records (time, kind) per request."""

    url: str
    rate: float
    samples: list[tuple[float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        interval = 1.0 / self.rate
        with httpx.Client(timeout=10.0) as client:
            next_at = time.monotonic()
            while not self.stop.is_set():
                try:
                    response = client.get(self.url)
                    if response.status_code >= 400:
                        kind = f"HTTP {response.status_code}"
                    elif MARKER not in response.text:
                        kind = "wrong body"
                    else:
                        kind = "ok"
                except httpx.HTTPError as error:
                    kind = f"connection: {type(error).__name__}"
                now = time.monotonic()
                self.samples.append((now, kind))
                # A steady rate: after a slow answer, no burst to catch up.
                next_at = max(next_at + interval, now)
                self.stop.wait(max(0.0, next_at - now))


@dataclass
class Load:
    url: str
    rate: float
    clients: int
    started: float = 0.0
    ended: float = 0.0
    pool: list[Client] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def __enter__(self) -> Self:
        self.pool = [Client(self.url, self.rate / self.clients) for _ in range(self.clients)]
        self.threads = [threading.Thread(target=c.run, daemon=True) for c in self.pool]
        self.started = time.monotonic()
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        for client in self.pool:
            client.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)
        self.ended = time.monotonic()

    def figures(self) -> dict[str, Any]:
        samples = sorted(s for c in self.pool for s in c.samples)
        kinds = collections.Counter(kind for _t, kind in samples if kind != "ok")
        longest, last_ok = 0.0, self.started
        for moment, kind in samples:
            if kind == "ok":
                longest = max(longest, moment - last_ok)
                last_ok = moment
        return {"sent": len(samples), "failed": sum(kinds.values()), "kinds": dict(kinds),
                "gap": longest, "rate": len(samples) / max(self.ended - self.started, 1e-9)}


def vmkeeper(config: Path, *argv: str) -> dict[str, Any]:
    result = proc.run([sys.executable, "-m", "vmkeeper", "--config", str(config), *argv,
                       "--json"], timeout=1800, check=False)
    data: dict[str, Any] = json.loads(result.stdout)
    if result.returncode != 0 or data.get("ok") is False:
        raise SystemExit(f"`vmkeeper {' '.join(argv)}` failed: {data.get('error')}")
    return data


def commit(layout: Layout, number: int) -> None:
    """A commit whose build changes its chunks (the page's text changes)."""
    dev = layout.dir / "bench-dev"
    git = ["git", "-C", str(dev), "-c", "user.name=bench", "-c", "user.email=bench@localhost"]
    if not dev.exists():
        proc.run(["git", "clone", "-q", str(layout.dir / "origin.git"), str(dev)], timeout=60)
    proc.run([*git, "pull", "-q", "--ff-only"], timeout=60)
    page = dev / "frontend" / "app" / "bench" / "page.js"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(f"export default function Bench() {{ return <p>bench commit {number}</p>; }}\n")
    proc.run([*git, "add", "-A"], timeout=30)
    proc.run([*git, "commit", "-q", "-m", f"bench commit {number}"], timeout=30)
    proc.run([*git, "push", "-q", "origin", "HEAD:main"], timeout=60)


def other_release(config: Path) -> str:
    listed = vmkeeper(config, "releases")
    return next(r["id"] for r in listed["releases"] if not r["active"])


def switches(layout: Layout, count: int, first_commit: int) -> tuple[list[str], int]:
    """``count`` switches: a deploy, then two rollbacks, repeated; their own failed counts."""
    done: list[str] = []
    own = 0
    for number in range(count):
        if number % 3 == 0:
            commit(layout, first_commit + number)
            data = vmkeeper(layout.config, "deploy")
            done.append("deploy")
        else:
            data = vmkeeper(layout.config, "rollback", other_release(layout.config))
            done.append("rollback")
        own += data.get("failed_requests") or 0
        print(f"  {done[-1]} {number + 1}/{count}: {data.get('failed_requests')} failed "
              f"(own watch), notes: {data.get('notes')}", file=sys.stderr)
    return done, own


def render_apache(layout: Layout, apache: apache_adapter.Apache, snippet: bool) -> None:
    """The sandbox's Apache config with or without vmkeeper's snippet; restarted."""
    routes = [apache_adapter.ProxyRoute("/api", layout.ports.backend),
              apache_adapter.ProxyRoute("/", layout.ports.frontend)]
    layout.apache_config.write_text(apache_adapter.render_config(
        root=layout.apache_root, port=layout.ports.proxy, routes=routes,
        frontend_include=layout.apache_frontend_include if snippet else None))
    apache.stop()
    apache.start()


def arm(layout: Layout, args: argparse.Namespace, count: int, first: int) -> dict[str, Any]:
    url = service.sandbox_settings(layout).public_url + "/"
    with Load(url, args.rate, args.clients) as load:
        time.sleep(SETTLE_S)  # a baseline of good answers before the first switch
        kinds, own = switches(layout, count, first)
        time.sleep(SETTLE_S)
    return {**load.figures(), "switches": kinds, "own": own}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--base-port", type=int, default=21000)
    parser.add_argument("--rate", type=float, default=60.0, help="requests/s, all clients")
    parser.add_argument("--clients", type=int, default=8, help="keep-alive clients")
    parser.add_argument("--switches", type=int, default=10, help="zero-downtime arm")
    parser.add_argument("--baseline-switches", type=int, default=4, help="runbook arm (0: skip)")
    parser.add_argument("--keep", action="store_true", help="leave the sandbox up")
    args = parser.parse_args()
    directory = args.dir or Path(tempfile.mkdtemp(prefix="vmkeeper-bench-"))
    layout = Layout.at(directory, args.base_port)
    rows: list[tuple[str, dict[str, Any]]] = []
    try:
        print(f"sandbox up in {directory} (base port {args.base_port})…", file=sys.stderr)
        service.up(layout)
        apache = service.apache_for(layout, service.sandbox_settings(layout).proxy.bin)
        if len(vmkeeper(layout.config, "releases")["releases"]) < 2:
            commit(layout, 0)
            vmkeeper(layout.config, "deploy")  # two retained releases to roll back between
        if args.baseline_switches:
            print("the runbook's switch (Apache without the snippet)…", file=sys.stderr)
            render_apache(layout, apache, snippet=False)
            rows.append(("runbook: delete + start", arm(layout, args, args.baseline_switches, 100)))
            render_apache(layout, apache, snippet=True)
        print("the zero-downtime switch (Apache with the snippet)…", file=sys.stderr)
        rows.append(("zero-downtime handover", arm(layout, args, args.switches, 200)))
    finally:
        if not args.keep:
            service.down(layout)
            if args.dir is None:
                shutil.rmtree(directory, ignore_errors=True)
    print(f"GETs through Apache at {args.rate:g}/s from {args.clients} keep-alive clients during "
          "mixed deploys and rollbacks of the sandbox's Next.js app")
    print(f"{'switch':<26}{'switches':>10}{'sent':>7}{'rate/s':>8}{'failed':>8}"
          f"{'longest gap s':>15}{'own watch':>11}  failures by kind")
    for name, r in rows:
        mix = collections.Counter(r["switches"])
        label = f"{mix['deploy']}d+{mix['rollback']}r"
        kinds = ", ".join(f"{k}: {v}" for k, v in sorted(r["kinds"].items())) or "-"
        print(f"{name:<26}{label:>10}{r['sent']:>7}{r['rate']:>8.1f}{r['failed']:>8}"
              f"{r['gap']:>15.2f}{r['own']:>11}  {kinds}")
    return 0


if __name__ == "__main__":
    logs.configure()  # an entry point: importing vmkeeper configures nothing
    sys.exit(main())
