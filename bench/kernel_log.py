"""Benchmark: scan a large synthetic kernel log for OOM kills; print MB/s and peak RSS.

The log is noise typical of a VM's kernel ring buffer with the real excerpts of
tests/data/kernel/ spread through it (pids renumbered per block so events stay distinct).
The baseline is the runbook's own command, `grep -Ei 'oom|killed process|out of memory'`, run
with -c so that both tools read the whole file and print little. Each measurement runs in a
fresh Python child that reports its own time and peak RSS.

    python bench/kernel_log.py [--mb 500] [--dir DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
from pathlib import Path

from vmkeeper import logs, proc

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests" / "data" / "kernel"
NOISE = [
    "Jun 12 03:14:15 vm kernel: [ 1234.567890] eth0: Link is Up - 1Gbps/Full - flow control off",
    "Jun 12 03:14:15 vm kernel: [ 1234.567901] audit: type=1400 audit(1718162055.123:812): "
    "apparmor=\"DENIED\" operation=\"open\" profile=\"snap.lxd.daemon\" "
    "name=\"/proc/1/environ\"",
    "Jun 12 03:14:15 vm kernel: [ 1234.568002] EXT4-fs (sda1): mounted filesystem with ordered "
    "data mode. Quota mode: none.",
    "Jun 12 03:14:15 vm kernel: [ 1234.568100] [UFW BLOCK] IN=eth0 OUT= MAC=02:42:ac:11:00:02 "
    "SRC=203.0.113.7 DST=10.0.0.5 LEN=40 TOS=0x00 PREC=0x00 TTL=244 ID=54321 PROTO=TCP SPT=443",
    "Jun 12 03:14:15 vm kernel: [ 1234.568200] systemd[1]: Started session-42.scope - Session 42 "
    "of User ubuntu.",
    "Jun 12 03:14:15 vm kernel: [ 1234.568300]  oom_kill_process.cold+0xb/0x10",
    "Jun 12 03:14:15 vm kernel: [ 1234.568400] [  12345]  1000 12345   226026    29603  1314816 "
    "       0             0 node",
    "Jun 12 03:14:15 vm kernel: [ 1234.568500] TCP: request_sock_TCP: Possible SYN flooding on "
    "port 80. Sending cookies.  Check SNMP counters.",
]
_PIDS = re.compile(r"(?<=process )\d+|(?<=pid=)\d+")
BLOCK_BYTES = 1 << 20


def generate(path: Path, megabytes: int) -> None:
    excerpts = [
        p.read_text(encoding="utf-8")
        for p in sorted(CORPUS.glob("*.log"))
    ]
    noise = "\n".join(NOISE) + "\n"
    repeats = BLOCK_BYTES // len(noise)
    with path.open("w", encoding="utf-8") as out:
        for block in range(megabytes):
            excerpt = excerpts[block % len(excerpts)]
            renumbered = _PIDS.sub(lambda m, b=block: f"{m.group(0)}{b:04d}", excerpt)
            half = repeats // 2
            out.write(noise * half)
            out.write(renumbered if renumbered.endswith("\n") else renumbered + "\n")
            out.write(noise * (repeats - half))


_PARSER_CHILD = """
import json, resource, sys, time
from vmkeeper.diagnose.oom_parser import OomParser
start = time.perf_counter()
parser = OomParser()
with open(sys.argv[1], "rb") as handle:
    parser.feed_chunks(iter(lambda: handle.read(1 << 20), b""))
events = parser.finish().events
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "events": len(events),
                  "rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""

_GREP_CHILD = """
import json, resource, sys, time
from vmkeeper import proc
start = time.perf_counter()
result = proc.run(["grep", "-c", "-Ei", "oom|killed process|out of memory", sys.argv[1]],
                  timeout=3600, check=False)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "events": int(result.stdout.strip() or 0),
                  "rss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def measure(child: str, path: Path) -> dict[str, float]:
    result = proc.run([sys.executable, "-c", child, str(path)], timeout=3600)
    measured: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=500, help="size of the large log in MB")
    parser.add_argument("--dir", type=Path, default=None, help="where to write the logs")
    parser.add_argument("--keep", action="store_true", help="keep the generated logs")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="vmkeeper-bench-", dir=args.dir))
    try:
        sizes = [max(args.mb // 10, 1), args.mb]
        rows = []
        for size in sizes:
            path = folder / f"kern-{size}MB.log"
            generate(path, size)
            megabytes = path.stat().st_size / 1e6
            for name, child in (("vmkeeper diagnose (parser)", _PARSER_CHILD),
                                ("grep -Ei (runbook baseline)", _GREP_CHILD)):
                figures = measure(child, path)
                rows.append((name, megabytes, megabytes / figures["seconds"],
                             figures["rss_kb"] / 1024, int(figures["events"])))
        print(f"{'tool':<30} {'log MB':>8} {'MB/s':>8} {'peak RSS MB':>12} {'found':>8}")
        for name, megabytes, rate, rss, found in rows:
            print(f"{name:<30} {megabytes:>8.0f} {rate:>8.0f} {rss:>12.1f} {found:>8}")
        print("found: OOM events for the parser; matching lines for grep.")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    logs.configure()  # an entry point: importing vmkeeper configures nothing
    main()
