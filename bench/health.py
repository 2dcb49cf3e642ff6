"""Benchmark: `vmkeeper health` beside the runbook's own commands, and pm2 kill → 200.

Usage: python bench/health.py --config SANDBOX/vmkeeper.toml [--runs 5]
(against a sandbox: `vmkeeper sandbox up --dir D --base-port B`). Prints one table.
Baseline: the runbook's "Health Checks" commands run one after another, as a person would
(df -h, df -ih, free -h, ss -ltnp, curl -I ×3, pm2 status).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path

import httpx

from vmkeeper import logs, proc
from vmkeeper.settings import load_settings

VMKEEPER = str(Path(sys.executable).with_name("vmkeeper"))


def runbook_commands(config: Path) -> list[tuple[list[str], dict[str, str]]]:
    s = load_settings(config, env={}).settings
    pm2_env = {"PM2_HOME": str(s.pm2.home)}
    ports = "|".join(f":{p}" for p in (s.proxy.port, s.apps.frontend.port, s.apps.backend.port,
                                       s.apps.telemetry.port, *s.apps.telemetry.extra_ports))
    del ports  # grep is a pipe in the runbook; ss's own run time is what is measured
    return [
        (["df", "-h"], {}), (["df", "-ih"], {}), (["free", "-h"], {}), (["ss", "-ltnp"], {}),
        (["curl", "-sI", f"http://127.0.0.1:{s.apps.frontend.port}"], {}),
        (["curl", "-sI", f"http://127.0.0.1:{s.apps.backend.port}/api/auth/me"], {}),
        (["curl", "-sI", s.public_url], {}),
        ([s.pm2.bin, "status"], pm2_env),
    ]


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    started = time.monotonic()
    proc.run(argv, timeout=120, env=env, check=False)
    return time.monotonic() - started


def median_of(runs: int, fn: callable[[], float]) -> tuple[float, float, float]:  # type: ignore[name-defined]
    samples = [fn() for _ in range(runs)]
    return statistics.median(samples), min(samples), max(samples)


def kill_to_200(config: Path) -> tuple[float, float]:
    """Seconds from `pm2 kill` returning to the first 200 through Apache, with recover run at
    once; and how long recover itself took (it also waits for its re-checks to settle)."""
    s = load_settings(config, env={}).settings
    proc.run([s.pm2.bin, "kill"], timeout=60, env={"PM2_HOME": str(s.pm2.home)}, check=False)
    killed = time.monotonic()
    first_200: list[float] = []

    def poll() -> None:
        while time.monotonic() - killed < 180:
            try:
                if httpx.get(s.public_url, timeout=2).status_code == 200:
                    first_200.append(time.monotonic() - killed)
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)

    poller = threading.Thread(target=poll)
    time.sleep(0.5)  # the poller must not see the last 200 from before the kill
    poller.start()
    started = time.monotonic()
    result = proc.run([VMKEEPER, "--config", str(config), "recover"], timeout=300, check=False)
    recover_seconds = time.monotonic() - started
    poller.join()
    if result.returncode != 0:
        raise SystemExit(f"recover failed: {result.output_tail}")
    return (first_200[0] if first_200 else float("nan")), recover_seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--kills", type=int, default=2)
    args = parser.parse_args()
    config = args.config.resolve()
    os.environ.pop("VMKEEPER_CONFIG", None)

    health = median_of(args.runs, lambda: timed(
        [VMKEEPER, "--config", str(config), "health", "--json"]))
    settings = load_settings(config, env={}).settings

    def in_process() -> float:
        from vmkeeper.health.service import run_health

        started = time.monotonic()
        run_health(settings, remember=False)
        return time.monotonic() - started

    in_proc = median_of(args.runs, in_process)
    commands = runbook_commands(config)
    each = {" ".join(Path(argv[0]).name if i == 0 else a for i, a in enumerate(argv)):
            median_of(args.runs, lambda argv=argv, env=env: timed(argv, env))
            for argv, env in commands}
    sequence = median_of(args.runs, lambda: sum(timed(a, e) for a, e in commands))
    kills = [kill_to_200(config) for _ in range(args.kills)]

    rows = [("vmkeeper health --json (all checks, concurrent)", *health),
            ("  of which the checks (run_health in-process)", *in_proc)]
    rows += [(f"  runbook: {name}", *t) for name, t in each.items()]
    rows.append(("runbook commands one after another (total)", *sequence))
    print(f"{'measure':58} {'median s':>9} {'min s':>7} {'max s':>7}")
    for name, med, low, high in rows:
        print(f"{name:58} {med:9.3f} {low:7.3f} {high:7.3f}")
    print(f"{'ratio: vmkeeper health / runbook sequence':58} {health[0] / sequence[0]:9.2f}")
    for i, (to_200, recover_s) in enumerate(kills, 1):
        print(f"{f'pm2 kill → 200 through Apache with recover (run {i})':58} {to_200:9.3f}")
        print(f"{f'  vmkeeper recover wall time incl. settle re-checks (run {i})':58} "
              f"{recover_s:9.3f}")
    print(f"runs={args.runs} python={sys.version.split()[0]} cpus={os.cpu_count()}")


if __name__ == "__main__":
    logs.configure()  # an entry point: importing vmkeeper configures nothing
    main()
