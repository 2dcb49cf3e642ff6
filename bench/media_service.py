"""Benchmark the reverse-video service: jobs through a real `vmkeeper media serve`.

Two phases against one service:
1. throughput — every good key submitted several times at once (duplicates coalesce: one job
   a key); the queue drains. The issue's figure, throughput vs 1 ÷ job seconds, is taken on
   the service's own clock: done jobs ÷ (last job's end − first job's claim) × mean job seconds
   (claim → settled): 1.0 means the queue loses nothing between jobs. Beside it what a job
   costs beyond its reversal: the reversal workers' lifetimes (started when the kernel says,
   ended when last seen by a 50 ms sampler) over that span, and the milliseconds per job
   outside the worker (the supervisor's start, the service's checks, settling the job). And a
   baseline from the shell: one `vmkeeper media reverse` of the same clip (median of 3),
   i.e. doing the jobs by hand one after another; ``throughput × baseline seconds``.
2. hostile — corrupt media, an empty file, path escapes, an over-long key, a body over the cap,
   a non-ASCII token: what each got, and the time the runner spent on them.

Also printed: the first formula this bench printed (done jobs ÷ the wall time of both phases
as this script saw it × median job seconds — it counts the hostile jobs' run time and this
script's HTTP polling against throughput, so it measures the mix as much as the overhead), job
seconds, the RSS of the process that supervises each job (the service's child: ``jobchild``
before, ``media.supervisor`` after), the worker's peak, the service's RSS.

    .venv/bin/python bench/media_service.py [--videos 4] [--copies 5] [--seconds 4]
    PYTHONPATH=/tmp/old/src .venv/bin/python bench/media_service.py   # another tree's code
"""

from __future__ import annotations

import argparse
import contextlib
import socket
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.media_service.helpers import TOKEN, corrupt
from vmkeeper import logs, proc
from vmkeeper.media.clips import Clip, Sound, make_clip

AUTH = {"Authorization": f"Bearer {TOKEN}"}
FINISHED = ("done", "failed", "rejected")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _mib(value: float | None) -> str:
    return "-" if not value else f"{value / 1024**2:.0f} MiB"


class Sampler:
    """Peak RSS of the service, of the process supervising a job, and of the worker."""

    def __init__(self, pid: int) -> None:
        self.service = psutil.Process(pid)
        self.offset = _create_time_offset()
        self.peaks = {"service": 0, "idle service": 0, "supervising": 0, "worker": 0}
        # pid -> (started, last seen): how long each reversal worker ran, seen every 50 ms
        self.workers: dict[int, tuple[float, float]] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            with contextlib.suppress(psutil.Error):  # a process gone between two samples
                self._sample()
            self.stop.wait(0.05)

    def _sample(self) -> None:
        rss = self.service.memory_info().rss
        self.peaks["service"] = max(self.peaks["service"], rss)
        children = self.service.children()
        if not children:
            self.peaks["idle service"] = max(self.peaks["idle service"], rss)
        for child in children:
            with_descendants = [child, *child.children(recursive=True)]
            for process in with_descendants:
                line = " ".join(process.cmdline())
                if "jobchild" in line or "media.supervisor" in line:
                    key = "supervising"
                elif "reverse" in line and "worker" in line:
                    key = "worker"
                    # Started when the kernel says (to a clock tick), ended when last seen:
                    # up to one sample (50 ms) short, never long.
                    now = time.time()
                    first, _last = self.workers.get(
                        process.pid, (process.create_time() - self.offset, now))
                    self.workers[process.pid] = (first, now)
                else:
                    continue
                self.peaks[key] = max(self.peaks[key], process.memory_info().rss)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join()


def _create_time_offset() -> float:
    """psutil's create_time minus time.time() for a process started now. create_time is
    reckoned from the boot time in whole seconds (/proc/stat btime): off by a constant of up
    to 1 s, which this measures (to a clock tick) so a worker's start can be placed in time."""
    before = time.time()
    with proc.start(["sleep", "5"], timeout=10) as child:
        offset = psutil.Process(child.pid).create_time() - before
        child.popen.kill()
    return offset


def _by_hand(clip: Path, folder: Path, config: Path) -> float:
    """Median wall seconds of `vmkeeper media reverse` on ``clip``, alone: the baseline."""
    walls = []
    for number in range(3):
        started = time.monotonic()
        proc.run([sys.executable, "-m", "vmkeeper", "--config", str(config), "media", "reverse",
                  str(clip), str(folder / f"by-hand-{number}.mp4")], timeout=600)
        walls.append(time.monotonic() - started)
    return statistics.median(walls)


def _drain(url: str, ids: set[str]) -> list[dict[str, Any]]:
    while True:
        jobs = [httpx.get(f"{url}/jobs/{i}", headers=AUTH, timeout=5).json() for i in ids]
        if all(j["state"] in FINISHED for j in jobs):
            return jobs
        time.sleep(0.1)


def _submit_all(url: str, keys: list[str]) -> list[httpx.Response]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda key: httpx.post(
            f"{url}/reverse", json={"key": key}, headers=AUTH, timeout=30), keys))


def _hostile(url: str) -> list[tuple[str, Callable[[], httpx.Response]]]:
    post = f"{url}/reverse"
    return [
        ("over-long key (5,000 chars)",
         lambda: httpx.post(post, json={"key": "a" * 5000}, headers=AUTH, timeout=30)),
        ("non-ASCII token", lambda: httpx.post(
            post, json={"key": "v0.mp4"}, timeout=30,
            headers={"Authorization": "Bearer é".encode()})),  # type: ignore[dict-item]
        ("1 MB body without a token", lambda: httpx.post(
            post, content=b"[" + b"1," * 500_000 + b"1]", timeout=30,
            headers={"Content-Type": "application/json"})),
        ("1 MB body with the token", lambda: httpx.post(
            post, content=b"[" + b"1," * 500_000 + b"1]", timeout=30,
            headers={**AUTH, "Content-Type": "application/json"})),
    ]


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
    good = [make_clip(uploads / f"v{n}.mp4", Clip(size=args.size, seconds=args.seconds, gop=30,
                                                  sound=Sound.BEEP))
            for n in range(args.videos)]
    corrupt(good[0], uploads / "corrupt1.mp4")
    corrupt(good[-1], uploads / "corrupt2.mp4")
    (uploads / "empty.mp4").write_bytes(b"")
    port = _free_port()
    config = folder / "vmkeeper.toml"
    config.write_text(f'state_dir = "{folder / "state"}"\n[apps.media]\nport = {port}\n'
                      f'[media]\nstorage_root = "{uploads}"\ntoken = "{TOKEN}"\n'
                      "[media.breaker]\nfailure_threshold = 5\n")
    by_hand = _by_hand(good[0], folder, config)
    url = f"http://127.0.0.1:{port}"
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
        with Sampler(service.pid) as sampler:
            time.sleep(0.5)  # the idle service, sampled before any job
            started = time.monotonic()
            answers = _submit_all(url, [p.name for p in good for _ in range(args.copies)])
            jobs = _drain(url, {a.json()["id"] for a in answers if a.status_code in (200, 202)})
            wall = time.monotonic() - started
            reversing = [last - first for first, last in sampler.workers.values()]
            hostile_started = time.monotonic()
            hostile_answers = _submit_all(url, ["corrupt1.mp4", "corrupt2.mp4", "empty.mp4",
                                                "../etc/passwd", "/etc/passwd"])
            extra = [(name, call().status_code) for name, call in _hostile(url)]
            hostile = _drain(url, {a.json()["id"] for a in hostile_answers
                                   if a.status_code in (200, 202)})
            hostile_wall = time.monotonic() - hostile_started
        service.popen.terminate()
        service.popen.wait(timeout=30)
    _print(args, folder, by_hand, (wall, reversing), jobs, answers, hostile, hostile_answers,
           hostile_wall, extra, sampler.peaks)
    return 0


def _print(args: argparse.Namespace, folder: Path, by_hand: float,
           phase: tuple[float, list[float]], jobs: list[dict[str, Any]],
           answers: list[httpx.Response],
           hostile: list[dict[str, Any]], hostile_answers: list[httpx.Response],
           hostile_wall: float, extra: list[tuple[str, int]], peaks: dict[str, int]) -> None:
    wall, reversing = phase
    done = [j for j in jobs if j["state"] == "done"]
    seconds = [j["seconds"] for j in done if j["seconds"]]
    one_job = statistics.median(seconds) if seconds else 0
    # The service's own clock: from the first job's claim to the last one's end, so neither the
    # HTTP submissions nor this script's polling for the end count against the queue.
    span = (max(j["finished_at"] for j in done) - min(j["started_at"] for j in done)
            if done else 0)
    everything = jobs + hostile
    mixed_done = [j for j in everything if j["state"] == "done"]
    waits = [j["started_at"] - j["created_at"] for j in jobs if j["started_at"]]
    worker_peaks = [j["details"].get("peak_memory_bytes") or 0 for j in everything]
    statuses = [a.status_code for a in hostile_answers]
    rows: list[tuple[str, Any]] = [
        ("good submissions / jobs / worker runs", "{} / {} / {}".format(
            len(answers), len(jobs), len([j for j in jobs if j["attempts"]]))),
        ("baseline: `media reverse` alone (median of 3)", f"{by_hand:.2f} s"),
        ("job seconds p50 / max", f"{one_job:.2f} / {max(seconds):.2f} s" if seconds else "-"),
        ("phase 1 wall (good jobs)", f"{wall:.1f} s"),
        ("throughput (good jobs)", f"{len(done) / wall * 60:.1f} /min"),
        ("throughput vs the baseline", f"{len(done) / wall * by_hand:.2f}x"),
        ("the reversal alone (worker lifetime) p50", f"{statistics.median(reversing):.2f} s"
         if reversing else "-"),
        ("the queue's span: first claim → last done (service clock)", f"{span:.2f} s"),
        ("throughput vs 1 ÷ job seconds: done ÷ span × mean job s",
         f"{len(done) / span * statistics.fmean(seconds):.2f}x" if seconds and span else "-"),
        ("the reversal's share: workers' lifetimes ÷ span", f"{sum(reversing) / span:.2f}x"
         if reversing and span else "-"),
        ("per job outside the worker (span − lifetimes) ÷ jobs",
         f"{(span - sum(reversing)) / len(done) * 1000:.0f} ms" if reversing and done else "-"),
        ("queue wait p50 / max", f"{statistics.median(waits):.1f} / {max(waits):.1f} s"
         if waits else "-"),
        ("hostile: HTTP 202 / 400", f"{statuses.count(202)} / {statuses.count(400)}"),
        ("hostile: done / failed / rejected", "{} / {} / {}".format(
            *(sum(j["state"] == s for j in hostile) for s in FINISHED))),
        ("hostile: runner seconds", f"{hostile_wall:.1f} s"),
        *[(f"hostile: {name}", f"HTTP {code}") for name, code in extra],
        ("first formula: all done ÷ (wall + hostile) × p50 job s",
         f"{len(mixed_done) / (wall + hostile_wall) * one_job:.2f}x" if one_job else "-"),
        ("idle service RSS", _mib(peaks["idle service"])),
        ("service peak RSS", _mib(peaks["service"])),
        ("supervising process peak RSS", _mib(peaks["supervising"])),
        ("worker peak RSS (sampled)", _mib(peaks["worker"])),
        ("worker tree peak (job record, max)", _mib(max(worker_peaks))),
    ]
    width = max(len(name) for name, _ in rows)
    print(f"media service benchmark: {args.videos} videos {args.size} {args.seconds:g} s, "
          f"{args.copies} copies each, in {folder}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


if __name__ == "__main__":
    logs.configure()  # an entry point: importing vmkeeper configures nothing
    sys.exit(main())
