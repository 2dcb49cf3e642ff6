"""Benchmark: the agent against a running sandbox — webhook-to-serving latency minus the build's
own time, status/health latency under 50 concurrent readers while a deploy runs, idle and busy
peak RSS.

The baseline for the latency is the same request with no deploy running (ratio column). The
agent runs on its own port and state folder beside the sandbox's (which `sandbox up` started).

    vmkeeper sandbox up --dir .bench-sandbox --base-port 21150
    python bench/agent.py --dir .bench-sandbox [--readers 50] [--requests 400] [--idle-only]

``--idle-only`` stops after the idle figure: the agent's peak RSS once it has answered one
request of each kind an idle VM sees (status, health, the media API's health and breaker).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

from vmkeeper.agent import auth, hooks
from vmkeeper.sandbox.layout import Layout
from vmkeeper.sandbox.service import base_port_of, sandbox_settings

GIT = ["git", "-c", "user.name=bench", "-c", "user.email=bench@localhost"]


@contextlib.contextmanager
def agent(config: Path, state: Path, port: int) -> Iterator[psutil.Process]:
    argv = [sys.executable, "-m", "vmkeeper", "--config", str(config), "--set",
            f"state_dir={state}", "agent", "serve", "--port", str(port)]
    child = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/v1/status", timeout=1).status_code == 401:
                    break
            time.sleep(0.2)
        yield psutil.Process(child.pid)
    finally:
        child.terminate()
        child.wait(30)


def hwm_mib(process: psutil.Process) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def readers(url: str, headers: dict[str, str], count: int, total: int) -> list[float]:
    times: list[float] = []
    lock = threading.Lock()
    left = [total]

    def one() -> None:
        with httpx.Client(headers=headers, timeout=60) as client:
            while True:
                with lock:
                    if left[0] <= 0:
                        return
                    left[0] -= 1
                started = time.perf_counter()
                client.get(url)
                with lock:
                    times.append(time.perf_counter() - started)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1] * 1000 if len(values) > 2 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", type=Path, required=True)
    parser.add_argument("--readers", type=int, default=50)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--idle-only", action="store_true")
    args = parser.parse_args()
    layout = Layout.at(args.dir.resolve(), base_port_of(args.dir.resolve()))
    settings = sandbox_settings(layout)
    secret = settings.agent.webhook_secret or ""
    port = layout.ports.agent + 1
    state = Path(tempfile.mkdtemp(prefix="bench-agent-"))
    token = auth.add(state, "bench", auth.Scope.OPERATE).token
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}"
    rows: list[tuple[str, str]] = []
    with agent(layout.config, state, port) as process:
        for path in ("/v1/status", "/v1/health", "/v1/media/health", "/v1/media/breaker"):
            httpx.get(base + path, headers=headers, timeout=60).raise_for_status()
        rows.append(("idle peak RSS (VmHWM)", f"{hwm_mib(process):.1f} MiB"))
        if args.idle_only:
            print(f"{rows[0][0]}  {rows[0][1]}")
            return
        quiet = {path: readers(base + path, headers, args.readers, args.requests)
                 for path in ("/v1/status", "/v1/health")}
        workspace = settings.workspace.path
        subprocess.run([*GIT, "-C", str(workspace), "commit", "-q", "--allow-empty", "-m",
                        "bench"], check=True)
        subprocess.run(["git", "-C", str(workspace), "push", "-q", "origin", "HEAD:main"],
                       check=True)
        sha = subprocess.run(["git", "-C", str(workspace), "rev-parse", "HEAD"], check=True,
                             capture_output=True, text=True).stdout.strip()
        body = json.dumps({"ref": f"refs/heads/{settings.agent.branch}", "after": sha}).encode()
        pushed = time.monotonic()
        op_id = httpx.post(f"{base}/v1/hooks/git", content=body, timeout=30, headers={
            "X-Hub-Signature-256": hooks.signature(secret, body),
            "X-GitHub-Delivery": f"bench-{sha}"}).json()["operation_id"]
        busy = {path: readers(base + path, headers, args.readers, args.requests)
                for path in ("/v1/status", "/v1/health")}
        while True:
            record = httpx.get(f"{base}/v1/operations/{op_id}", headers=headers).json()
            if record["state"] in ("succeeded", "failed", "cancelled"):
                break
            time.sleep(0.1)
        while httpx.get(settings.public_url + "/", timeout=10).status_code != 200:
            time.sleep(0.05)
        serving = time.monotonic() - pushed
        rows.append(("busy peak RSS (VmHWM)", f"{hwm_mib(process):.1f} MiB"))
    steps = {s["name"]: s["seconds"] for s in (record.get("result") or {}).get("steps", [])}
    build = steps.get("install", 0) + steps.get("build", 0)
    rows.append(("deploy", f"{record['state']} in {serving:.2f} s push→serving"))
    rows.append(("webhook→serving minus npm ci + build", f"{serving - build:.2f} s "
                 f"(build {build:.2f} s)"))
    for path in quiet:
        q50, q99 = pct(quiet[path], 50), pct(quiet[path], 99)
        b50, b99 = pct(busy[path], 50), pct(busy[path], 99)
        rows.append((f"{path} p50/p99, {args.readers} readers, idle",
                     f"{q50:.1f} / {q99:.1f} ms"))
        rows.append((f"{path} p50/p99 during the deploy",
                     f"{b50:.1f} / {b99:.1f} ms (×{b50 / q50 if q50 else 0:.2f} p50)"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
