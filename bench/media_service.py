"""Benchmark the reverse-video service: a mix of jobs through a real `vmkeeper media serve`.

Submits every good key several times at once (duplicates), plus hostile inputs (corrupt media,
an empty file, path escapes), waits for the queue to drain and prints throughput, queue wait,
job seconds, peak memory of the worker (its cgroup or process tree) and of the service, and the
FFmpeg runs deduplication saved. Baseline for the ratios: one job's own seconds (serialized
throughput can be at best 1 / job seconds).

    .venv/bin/python bench/media_service.py [--videos 4] [--copies 5] [--seconds 4]
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.media_service.helpers import TOKEN, corrupt, make_video
from vmkeeper import logs, proc

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mib(value: float | None) -> str:
    return "-" if not value else f"{value / 1024**2:.0f} MiB"


def main() -> int:
    logs.configure()  # an entry point: importing vmkeeper configures nothing
    parser = argparse.ArgumentParser()
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--copies", type=int, default=5, help="submissions of each good key")
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--size", default="640x360")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-media-service-"))
    uploads = folder / "uploads"
    good = [make_video(uploads / f"v{n}.mp4", args.seconds, args.size, 30)
            for n in range(args.videos)]
    corrupt(good[0], uploads / "corrupt1.mp4")
    corrupt(good[-1], uploads / "corrupt2.mp4")
    (uploads / "empty.mp4").write_bytes(b"")
    port = _free_port()
    config = folder / "vmkeeper.toml"
    config.write_text(f'state_dir = "{folder / "state"}"\n[apps.media]\nport = {port}\n'
                      f'[media]\nstorage_root = "{uploads}"\ntoken = "{TOKEN}"\n'
                      "[media.breaker]\nfailure_threshold = 5\n")
    url = f"http://127.0.0.1:{port}"
    submissions = [p.name for p in good for _ in range(args.copies)]
    submissions += ["corrupt1.mp4", "corrupt2.mp4", "empty.mp4", "../etc/passwd", "/etc/passwd"]
    with (folder / "service.log").open("wb") as log, proc.start(
            [sys.executable, "-m", "vmkeeper", "--config", str(config), "media", "serve"],
            timeout=3600, stdout=log, stderr=log) as service:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/health", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        service_peak = [0]
        stop = threading.Event()

        def sample() -> None:
            process = psutil.Process(service.pid)
            while not stop.is_set():
                service_peak[0] = max(service_peak[0], process.memory_info().rss)
                stop.wait(0.05)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.monotonic()
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda key: httpx.post(
                f"{url}/reverse", json={"key": key}, headers=AUTH, timeout=30), submissions))
        ids = {a.json()["id"] for a in answers if a.status_code in (200, 202)}
        while True:
            jobs = [httpx.get(f"{url}/jobs/{i}", headers=AUTH, timeout=5).json() for i in ids]
            if all(j["state"] in ("done", "failed", "rejected") for j in jobs):
                break
            time.sleep(0.2)
        wall = time.monotonic() - started
        stop.set()
        sampler.join()
        service.popen.terminate()
        service.popen.wait(timeout=30)
    done = [j for j in jobs if j["state"] == "done"]
    waits = [j["started_at"] - j["created_at"] for j in jobs if j["started_at"]]
    seconds = [j["seconds"] for j in done if j["seconds"]]
    worker_peaks = [j["details"].get("peak_memory_bytes") or 0 for j in jobs]
    statuses = [a.status_code for a in answers]
    runs = len([j for j in jobs if j["attempts"]])
    one_job = statistics.median(seconds) if seconds else 0
    rows: list[tuple[str, Any]] = [
        ("submissions (good x copies + hostile)", len(submissions)),
        ("HTTP answers 202 / 400", f"{statuses.count(202)} / {statuses.count(400)}"),
        ("jobs created", len(ids)),
        ("worker runs (FFmpeg)", runs),
        ("FFmpeg runs saved by dedup", len(submissions) - statuses.count(400) - runs),
        ("done / failed / rejected", "{} / {} / {}".format(
            len(done), sum(j["state"] == "failed" for j in jobs),
            sum(j["state"] == "rejected" for j in jobs))),
        ("wall time", f"{wall:.1f} s"),
        ("throughput (done jobs)", f"{len(done) / wall * 60:.1f} /min"),
        ("throughput vs 1 / job seconds", f"{(len(done) / wall) * one_job:.2f}x"
         if one_job else "-"),
        ("queue wait p50 / max", f"{statistics.median(waits):.1f} / {max(waits):.1f} s"
         if waits else "-"),
        ("job seconds p50 / max", f"{one_job:.2f} / {max(seconds):.2f} s" if seconds else "-"),
        ("worker peak memory (max)", _mib(max(worker_peaks))),
        ("service peak RSS", _mib(service_peak[0])),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"media service benchmark: {args.videos} videos {args.size} {args.seconds:g} s, "
          f"{args.copies} copies each, in {folder}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
