"""Benchmark: `vmkeeper fleet health` for 1, 4 and 10 hosts, and a rolling deploy's overhead.

Usage: python bench/fleet.py [--base-port 21150] [--runs 3] [--sandbox DIR] [--deploy-hosts 4]
Starts a loopback sshd (openssh-server; `make system-deps`) and writes inventories whose hosts
are aliases of it.

Health: each host has its own settings (nothing runs there: every host answers "critical"
after its full set of checks); the whole command is timed. Baseline: one host. Goal: 10 hosts
≤ 2× one host (forks run them in parallel).

Deploy (with --sandbox DIR, a running `vmkeeper sandbox up --dir DIR --base-port B`): N cheap
hosts on that sandbox (tests/integration/fleet_hosts.py: own Apache, workspace, releases and
frontend; the sandbox's PM2) with the fixture frontend. Baseline: N sequential
`vmkeeper deploy --json` on the hosts themselves, summed; against it `vmkeeper fleet deploy`
of the next commit to the same hosts, one host per wave, soak 0 (the soak is a chosen wait,
not overhead). Both sides alternate for --runs rounds; medians. Prints two tables.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.sshd import VMKEEPER, Sshd, host_configs, running_sshd
from tests.support.apache_dirs import apache_reachable
from vmkeeper import proc


def _setup(folder: Path, sshd_inventory: object, count: int, base: int) -> Path:
    hosts = host_configs(folder, count, base)
    inventory = sshd_inventory(folder / f"inventory-{count}.ini", hosts)  # type: ignore[operator]
    control = folder / f"control-{count}.toml"
    control.write_text(f'state_dir = "{folder / "state"}"\n[fleet]\nremote_bin = "{VMKEEPER}"\n'
                       f'inventory = "{inventory}"\nforks = 10\ntimeout_s = 300\n')
    return control


def _timed(argv: list[str]) -> float:
    started = time.monotonic()
    result = proc.run(argv, timeout=900, check=False)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed ({result.returncode}): "
                         f"{(result.stderr or result.stdout)[-800:]}")
    return time.monotonic() - started


def health_table(folder: Path, sshd: Sshd, base: int, runs: int) -> None:
    rows = []
    for count in (1, 4, 10):
        control = _setup(folder, sshd.inventory, count, base)
        times = []
        for _ in range(runs):
            started = time.monotonic()
            proc.run([VMKEEPER, "--config", str(control), "fleet", "health", "--json"],
                     timeout=600, check=False)
            times.append(time.monotonic() - started)
        rows.append((count, statistics.median(times)))
    one = rows[0][1]
    print(f"{'hosts':>5}  {'fleet health median s':>21}  {'× one host':>10}")
    for count, seconds in rows:
        print(f"{count:>5}  {seconds:>21.2f}  {seconds / one:>10.2f}")


def deploy_table(folder: Path, sshd: Sshd, sandbox_dir: Path, count: int, runs: int) -> None:
    from tests.conftest import SandboxHandle
    from tests.integration.deploy_support import DeployBed
    from tests.integration.fleet_hosts import make_hosts, remove_hosts
    from vmkeeper.sandbox import service
    from vmkeeper.sandbox.layout import Layout

    layout = Layout.at(sandbox_dir, service.base_port_of(sandbox_dir))
    settings = service.sandbox_settings(layout)
    sandbox = SandboxHandle(layout, settings, service.pm2_for(layout),
                            service.apache_for(layout, settings.proxy.bin))
    bed = DeployBed(sandbox, folder / "bed", cli=lambda *a: None)  # type: ignore[arg-type,return-value]
    bed.setup()
    hosts = make_hosts(sandbox, folder / "hosts", bed.origin, layout.ports.base, count)
    try:
        inventory = sshd.inventory(folder / "deploy.ini", {h.name: h.config for h in hosts})
        control = folder / "deploy-control.toml"
        control.write_text(f'state_dir = "{folder / "control-state"}"\n[fleet]\n'
                           f'remote_bin = "{VMKEEPER}"\ninventory = "{inventory}"\n'
                           "waves = [1]\nsoak_s = 0\ntimeout_s = 600\nmin_free_mb = 0\n")
        fleet = [VMKEEPER, "--config", str(control), "fleet", "deploy", "--branch", "main",
                 "--json"]
        bed.commit("warm-up")
        _timed(fleet)  # every host has a release, npm's cache is warm
        sequential, rolling = [], []
        for round_ in range(runs):
            bed.commit(f"sequential {round_}")
            sequential.append(sum(_timed([VMKEEPER, "--config", str(h.config), "deploy",
                                          "--json"]) for h in hosts))
            bed.commit(f"rolling {round_}")
            rolling.append(_timed(fleet))
    finally:
        remove_hosts(sandbox, hosts)
    seq, roll = statistics.median(sequential), statistics.median(rolling)
    print(f"{'hosts':>5}  {'N × vmkeeper deploy s':>21}  {'fleet deploy s':>14}  "
          f"{'overhead s':>10}  {'× sequential':>12}")
    print(f"{count:>5}  {seq:>21.2f}  {roll:>14.2f}  {roll - seq:>10.2f}  {roll / seq:>12.2f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-port", type=int, default=21150)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sandbox", type=Path, help="a running sandbox: also time deploys")
    parser.add_argument("--deploy-hosts", type=int, default=4)
    parser.add_argument("--skip-health", action="store_true")
    args = parser.parse_args()
    # Apache reads the hosts' releases: not a 0700 temporary folder.
    with apache_reachable("vmkeeper-bench-fleet-") as folder, \
            running_sshd(folder / "sshd", args.base_port + 9) as sshd:
        if not args.skip_health:
            health_table(folder, sshd, args.base_port, args.runs)
        if args.sandbox:
            deploy_table(folder, sshd, args.sandbox.resolve(), args.deploy_hosts, args.runs)


if __name__ == "__main__":
    main()
