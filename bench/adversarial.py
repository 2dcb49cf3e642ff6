"""Benchmark: MB/s of the redactor and the kernel-log parser on hostile lines, beside ordinary logs.

Every pattern that reads outside input must take time linear in it: a line built to make a
backtracking engine try every split (`a=a=a=…`, a 1 MB word, a hex blob beside `token`, an
unclosed quote, a PEM header with no END) must cost about what an ordinary log of the same size
costs. The baseline is an ordinary log of the same size (real-shaped PM2 and access-log lines);
the ratio column is hostile MB/s ÷ that baseline's MB/s, so a quadratic pattern shows as a ratio
that falls tenfold with each tenfold size.

    python bench/adversarial.py [--sizes 1,10,100,1000] [--only redact|kernel]
"""

from __future__ import annotations

import argparse
import base64
import random
import time
from collections.abc import Callable

ORDINARY_LINES = [
    "2026-06-12T03:14:15Z App [backend-dev:1] GET /api/users/42 200 12.3 ms - 512",
    '2026-06-12T03:14:15Z {"level":"info","msg":"request","path":"/api/auth/me","status":401}',
    "2026-06-12T03:14:16Z PM2 | App [frontend-dev:0] online pid 4242 on port 3001",
    "10.0.0.5 - - [12/Jun/2026:03:14:16 +0000] \"GET /_next/static/chunks/main.js HTTP/1.1\" 200",
    "2026-06-12T03:14:17Z worker queue=mail jobs=3 retries=0 took=41ms user=ubuntu",
]
KERNEL_LINES = [
    "Jun 12 03:14:15 vm kernel: [ 1234.567890] eth0: Link is Up - 1Gbps/Full - flow control off",
    ("Jun 12 03:14:15 vm kernel: [ 1234.568000] node invoked oom-killer: "
     "gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"),
    ("Jun 12 03:14:15 vm kernel: [ 1234.568100] Out of memory: Killed process 4242 (node) "
     "total-vm:12345678kB, anon-rss:2345678kB, file-rss:0kB, shmem-rss:0kB, UID:1000"),
    ("Jun 12 03:14:15 vm kernel: [ 1234.568200] oom-kill:constraint=CONSTRAINT_NONE,"
     "nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/pm2.service,task=node,pid=4242"),
]


def _fill(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def _hex(size: int) -> str:
    rng = random.Random(size)
    return "".join(rng.choice("0123456789abcdef") for _ in range(size))


def redactor_inputs(size: int) -> dict[str, str]:
    """Hostile lines for the redactor, each ``size`` characters."""
    rng = random.Random(size)
    b64 = base64.b64encode(rng.randbytes(size)).decode()[:size]
    return {
        "a=a=a=… (assignments)": _fill("a=", size),
        "password=password=…": _fill("password=", size),
        "one word, no separator": "x" * size,
        "token + hex blob": "token " + _hex(size - 6),
        'unclosed "\\"\\"…': '"' + _fill('\\"', size - 1),
        "PEM header, no END": "-----BEGIN RSA PRIVATE KEY-----\n" + _fill(b64[:64] + "\n", size),
        "--token --token …": _fill("--token ", size),
        "URL of @s": "https://u:" + _fill("p@", size - 10),
        "base64 blob": b64,
        '"key":"value", … (JSON)': _fill('"password_hint":"x", ', size),
    }


def kernel_inputs(size: int) -> dict[str, str]:
    """Hostile lines for the kernel-log parser, each ``size`` characters."""
    prefix = "Jun 12 03:14:15 vm kernel: [ 1234.568100] "
    return {
        "Killed process (very long name": prefix + "Out of memory: Killed process 4242 ("
        + "a" * (size - 80),
        "oom-kill:constraint=,,,…": prefix + "oom-kill:constraint=" + _fill("x,", size - 62),
        "total-vm: repeated": prefix + "Killed process 1 (n) " + _fill("total-vm:1kB, ", size - 62),
        "one long kernel line": prefix + "x" * (size - len(prefix)),
    }


def ordinary(lines: list[str], size: int) -> str:
    return _fill("\n".join(lines) + "\n", size)


def _kernel_parser() -> Callable[[str], object]:
    from vmkeeper.diagnose.oom_parser import parse_kernel_log  # the parser's public entry point

    return lambda text: parse_kernel_log(text)


def rate(function: Callable[[str], object], text: str) -> float:
    """MB/s, from the best of a few runs (at least 0.2 s of work in all)."""
    best = float("inf")
    spent = 0.0
    runs = 0
    while runs < 3 or (spent < 0.2 and runs < 50):
        start = time.perf_counter()
        function(text)
        elapsed = time.perf_counter() - start
        best = min(best, elapsed)
        spent += elapsed
        runs += 1
    return len(text.encode()) / 1e6 / max(best, 1e-9)


def table(title: str, function: Callable[[str], object], inputs: Callable[[int], dict[str, str]],
          baseline_lines: list[str], sizes: list[int]) -> None:
    print(f"\n{title}: MB/s, and the ratio to an ordinary log of the same size")
    header = f"{'input':<34}" + "".join(f"{str(s // 1000) + ' KB':>18}" for s in sizes)
    print(header)
    print("-" * len(header))
    base = {size: rate(function, ordinary(baseline_lines, size)) for size in sizes}
    print(f"{'ordinary log (baseline)':<34}" + "".join(f"{base[s]:>11.2f} (1.00)" for s in sizes))
    for name in inputs(sizes[0]):
        cells = []
        for size in sizes:
            value = rate(function, inputs(size)[name])
            cells.append(f"{value:>11.2f} ({value / base[size]:.2f})")
        print(f"{name:<34}" + "".join(cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1,10,100,1000", help="line sizes in KB")
    parser.add_argument("--only", choices=("redact", "kernel"))
    args = parser.parse_args()
    sizes = [int(part) * 1000 for part in args.sizes.split(",")]
    from vmkeeper.redact import redact_text

    redact_text("warm up: compile the patterns")
    if args.only in (None, "redact"):
        table("redactor (vmkeeper.redact.redact_text)", redact_text, redactor_inputs,
              ORDINARY_LINES, sizes)
    if args.only in (None, "kernel"):
        table("kernel-log parser", _kernel_parser(), kernel_inputs, KERNEL_LINES, sizes)


if __name__ == "__main__":
    main()
