"""Benchmark: `vmkeeper fleet health` wall time for 1, 4 and 10 hosts over real SSH.

Usage: python bench/fleet.py [--base-port 21100] [--runs 3]
Starts a loopback sshd (openssh-server; `make system-deps`), writes an inventory whose hosts
are aliases of it, each with its own settings (nothing runs there: every host answers
"critical" after its full set of checks), and times the whole command. Baseline: one host.
Goal: 10 hosts ≤ 2× one host (forks run them in parallel). Prints one table.
The rolling deploy's overhead over its own deploys is not measured here yet.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.integration.sshd import VMKEEPER, host_configs, running_sshd
from vmkeeper import proc


def _setup(folder: Path, sshd_inventory: object, count: int, base: int) -> Path:
    hosts = host_configs(folder, count, base)
    inventory = sshd_inventory(folder / f"inventory-{count}.ini", hosts)  # type: ignore[operator]
    control = folder / f"control-{count}.toml"
    control.write_text(f'state_dir = "{folder / "state"}"\n[fleet]\nremote_bin = "{VMKEEPER}"\n'
                       f'inventory = "{inventory}"\nforks = 10\ntimeout_s = 300\n')
    return control


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base-port", type=int, default=21100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temp:
        folder = Path(temp)
        with running_sshd(folder / "sshd", args.base_port + 9) as sshd:
            rows = []
            for count in (1, 4, 10):
                control = _setup(folder, sshd.inventory, count, args.base_port)
                times = []
                for _ in range(args.runs):
                    started = time.monotonic()
                    proc.run([VMKEEPER, "--config", str(control), "fleet", "health", "--json"],
                             timeout=600, check=False)
                    times.append(time.monotonic() - started)
                rows.append((count, statistics.median(times)))
    one = rows[0][1]
    print(f"{'hosts':>5}  {'median wall s':>13}  {'× one host':>10}")
    for count, seconds in rows:
        print(f"{count:>5}  {seconds:>13.2f}  {seconds / one:>10.2f}")


if __name__ == "__main__":
    main()
