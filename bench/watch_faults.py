"""`bench/watch.py --faults`: the watcher healing a sandbox without a person.

For each injected fault: the time from injecting it to the watcher's incident (detect), and
until what it broke answers through Apache again — the site's 200, the API's 401 (goal for
PM2-level faults: within 15 s at the default interval);
the alerts the watcher sent (to a webhook receiver here); then N healthy deploys while it
watches, and the incidents they opened (goal: 0 — a deploy is a maintenance window). The
sandbox's own watcher is stopped for the run (two would race to heal) and started again after.
Baseline: the PM2 and Apache themselves, with no watcher (a fault they heal alone, the backend
killed -9 that PM2's autorestart brings back, is timed the same way).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from vmkeeper import proc
from vmkeeper.sandbox import agent_proc
from vmkeeper.sandbox import service as sandbox
from vmkeeper.sandbox.layout import Layout
from vmkeeper.watch.service import store_of


@contextlib.contextmanager
def _receiver() -> Iterator[tuple[str, list[dict[str, object]]]]:
    got: list[dict[str, object]] = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length") or 0))
            with contextlib.suppress(ValueError):
                got.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *_args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", got
    finally:
        server.shutdown()


def _until(predicate: Callable[[], object], timeout: float) -> float | None:
    """Seconds until ``predicate`` held, or None when it did not within ``timeout``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        with contextlib.suppress(Exception):
            if predicate():
                return time.monotonic() - started
        time.sleep(0.2)
    return None


class Bench:
    def __init__(self, layout: Layout, interval: float) -> None:
        self.layout = layout
        self.settings = sandbox.sandbox_settings(layout)
        self.pm2 = sandbox.pm2_for(layout)
        self.state = Path(tempfile.mkdtemp(prefix="bench-faults-"))
        self.interval = interval

    def site_ok(self) -> bool:
        return httpx.get(self.settings.public_url, timeout=3).status_code == 200

    def incidents(self) -> list[dict[str, object]]:
        # The watcher's own store, read in-process: a `vmkeeper incidents` per poll would be a
        # Python start every 0.2 s competing with the watcher it times.
        store = store_of(self.settings.model_copy(update={"state_dir": self.state}))
        return [{"state": i.state} for i in store.incidents()]

    def watcher_argv(self, hook: str) -> list[str]:
        argv = [sys.executable, "-m", "vmkeeper", "--config", str(self.layout.config)]
        for value in (f"state_dir={self.state}", f"watch.interval_s={self.interval:g}",
                      f"alerts.webhook_url={hook}"):
            argv += ["--set", value]
        return [*argv, "watch"]

    def answers(self, probe: tuple[str, int]) -> bool:
        url, expected = probe
        return httpx.get(url, timeout=3).status_code == expected

    def fault(self, name: str, inject: Callable[[], None], probe: tuple[str, int],
              alerts: list[dict[str, object]], watching: bool
              ) -> tuple[str, float | None, float | None, int]:
        """(name, seconds to the incident or None, seconds until ``probe`` answers again
        through Apache, alerts sent)."""
        _until(lambda: self.answers(probe), 120)
        before, sent = len(self.incidents()) if watching else 0, len(alerts)
        started = time.monotonic()
        inject()
        detect = None
        # A fault PM2 heals at once may never be an incident: the wait for one is bounded.
        if watching and _until(lambda: len(self.incidents()) > before,
                               self.interval * 6) is not None:
            detect = time.monotonic() - started
        back = _until(lambda: time.monotonic() - started > 0.5 and self.answers(probe), 120)
        to_answer = None if back is None else time.monotonic() - started
        if watching:  # the incident resolved, and its alert sent, before the next fault
            _until(lambda: all(i["state"] != "open" for i in self.incidents()), 120)
            # The store says "resolved" a moment before the alert is posted: wait for the
            # receiver to have one alert per incident opened and per incident ended.
            new = self.incidents()[before:]
            ended = sum(i["state"] != "open" for i in new)
            _until(lambda: len(alerts) - sent >= len(new) + ended, 10)
        return name, detect, to_answer, len(alerts) - sent

    def faults(self) -> list[tuple[str, Callable[[], None], tuple[str, int]]]:
        backend = self.settings.apps.backend.name

        def kill9() -> None:
            app = self.pm2.app(backend)
            if app is not None and app.pid:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(app.pid, signal.SIGKILL)

        def kill_pm2() -> None:
            self.pm2.kill()

        def stop_backend() -> None:
            self.pm2.stop(backend)

        site = (self.settings.public_url.rstrip("/") + "/", 200)
        api = (self.settings.public_url.rstrip("/") + "/api/auth/me", 401)  # 401: alive
        return [("pm2 kill (the June incident)", kill_pm2, site),
                (f"{backend} stopped", stop_backend, api),
                (f"{backend} killed -9", kill9, api)]


def run(folder: Path, base_port: int, interval: float, deploys: int) -> None:
    layout = Layout.at(folder, base_port)
    bench = Bench(layout, interval)
    rows = []
    # The baseline: no watcher at all (the sandbox's own stopped too).
    agent_proc.stop(layout, "watch")
    try:
        for name, inject, probe in bench.faults()[2:]:  # what heals without a watcher
            rows.append(("no watcher", *bench.fault(name, inject, probe, [], False)))
        with _receiver() as (hook, alerts), proc.start(
                bench.watcher_argv(hook), timeout=3600, stdout=proc.DEVNULL,
                stderr=proc.DEVNULL):
            # The watcher runs for this block; leaving it kills the watcher's group.
            _until(lambda: (bench.state / "watch").exists(), 60)
            for name, inject, probe in bench.faults():
                rows.append(("watcher", *bench.fault(name, inject, probe, alerts, True)))
            before = len(bench.incidents())
            deployed = 0
            for _ in range(deploys):
                done = proc.run([sys.executable, "-m", "vmkeeper", "--config",
                                 str(layout.config), "deploy", "--json"], timeout=900,
                                check=False)
                deployed += done.ok
            false_incidents = len(bench.incidents()) - before
    finally:
        agent_proc.start_watcher(layout)
    print(f"watch.interval_s={interval:g}; seconds from injecting the fault to the incident "
          "(detect) and to an answer through Apache again (the site's 200, the API's 401)")
    print(f"{'':11} {'fault':32} {'detect':>7} {'answers':>7} {'alerts':>6}")
    for who, name, detect, to_200, sent in rows:
        d = f"{detect:.1f}" if detect is not None else "-"
        t = f"{to_200:.1f}" if to_200 is not None else "never"
        print(f"{who:11} {name:32} {d:>7} {t:>7} {sent if who == 'watcher' else '-':>6}")
    print(f"healthy deploys while watching: {deployed} of {deploys} succeeded, "
          f"{false_incidents} incident(s) opened")
