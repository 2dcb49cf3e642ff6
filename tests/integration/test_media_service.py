"""`vmkeeper media serve` as a real process: concurrency, memory limit, SIGKILL and restart."""

from __future__ import annotations

import json
import os
import signal
import socket
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from tests.media_service.helpers import TOKEN, make_video
from tests.support.waiting import wait_for
from vmkeeper import proc

pytestmark = pytest.mark.slow
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _config(tmp: Path, port: int, **media: Any) -> Path:
    (tmp / "uploads").mkdir(exist_ok=True)
    lines = [f'state_dir = "{tmp / "state"}"', "[apps.media]", f"port = {port}", "[media]",
             f'storage_root = "{tmp / "uploads"}"', f'token = "{TOKEN}"']
    lines += [f"{key} = {json.dumps(value)}" for key, value in media.items()]
    # The host's real memory pressure must not decide these tests (tests/media_service/
    # test_admission.py does): a memory-limit test before them leaves PSI high for seconds.
    lines += ["[watch]", "memory_pressure_warn_pct = 100", "memory_available_warn_pct = 0"]
    path = tmp / "vmkeeper.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


class Service:
    def __init__(self, running: proc.Running, url: str, log: Path) -> None:
        self.running = running
        self.url = url
        self.log = log

    def records(self) -> list[dict[str, Any]]:
        found = []
        for line in self.log.read_text().splitlines():
            try:
                found.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return found

    def wait_finished(self, job_id: str, timeout: float = 120) -> dict[str, Any]:
        def finished() -> dict[str, Any] | None:
            job: dict[str, Any] = httpx.get(f"{self.url}/jobs/{job_id}", headers=AUTH,
                                            timeout=5).json()
            return job if job["state"] in ("done", "failed", "rejected") else None

        return wait_for(finished, timeout, f"job {job_id} to finish", interval=0.2)


@contextmanager
def service(config: Path, log: Path) -> Iterator[Service]:
    port = int(next(line for line in config.read_text().splitlines()
                    if line.startswith("port")).split("=")[1])
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as sink, proc.start(
            [sys.executable, "-m", "vmkeeper", "--config", str(config), "media", "serve"],
            timeout=900, stdout=sink, stderr=sink) as running:
        wait_for(lambda: running.poll() is not None
                 or httpx.get(f"{url}/health", timeout=1).status_code == 200,
                 30, "the service to answer /health")
        assert running.poll() is None, log.read_text()
        try:
            yield Service(running, url, log)
        finally:
            if running.poll() is None:
                running.popen.send_signal(signal.SIGTERM)
                try:
                    running.popen.wait(timeout=20)
                except Exception:  # noqa: BLE001
                    running.kill()


def _ours(folder: Path) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline", "status"])
            if str(folder) in " ".join(p.info["cmdline"] or [])
            and p.info["status"] != psutil.STATUS_ZOMBIE]


def test_twenty_concurrent_submissions_of_one_key_make_one_job_and_one_run(
        tmp_path: Path) -> None:
    make_video(tmp_path / "uploads" / "clip.mp4")
    config = _config(tmp_path, _free_port())
    with service(config, tmp_path / "service.log") as svc:
        with ThreadPoolExecutor(20) as pool:
            answers = list(pool.map(
                lambda _: httpx.post(f"{svc.url}/reverse", json={"key": "clip.mp4"},
                                     headers=AUTH, timeout=30), range(20)))
        # The job can finish before the last of the twenty arrive (0.3 s on an idle VM): the
        # late ones are then answered from its output (200, cached), all with one id.
        queued = {a.json()["id"] for a in answers if a.status_code == 202}
        cached = {a.json()["id"] for a in answers if a.status_code == 200}
        assert {a.status_code for a in answers} <= {200, 202}, [a.text for a in answers]
        assert len(queued) == 1 and len(cached) <= 1
        job = svc.wait_finished(queued.pop())
        assert job["state"] == "done" and job["attempts"] == 1
        jobs = httpx.get(f"{svc.url}/jobs", headers=AUTH, timeout=5).json()["jobs"]
        assert len(jobs) == 1 + len(cached)
        assert {j["output"] for j in jobs} == {job["output"]}
        running = [r for r in svc.records() if r.get("state") == "running"]
        assert len(running) == 1, "one FFmpeg run"


def test_over_the_memory_limit_the_job_fails_and_the_service_stays_up(tmp_path: Path) -> None:
    make_video(tmp_path / "uploads" / "clip.mp4")
    config = _config(tmp_path, _free_port(), worker_memory_limit_mb=16)  # the lean tree needs ~20
    with service(config, tmp_path / "service.log") as svc:
        health = httpx.get(f"{svc.url}/health", timeout=5).json()
        job_id = httpx.post(f"{svc.url}/reverse", json={"key": "clip.mp4"}, headers=AUTH,
                            timeout=5).json()["id"]
        job = svc.wait_finished(job_id)
        assert job["state"] == "failed" and job["reason"] == "memory limit", job
        after = httpx.get(f"{svc.url}/health", timeout=5)
        assert after.status_code == 200 and after.json()["pid"] == health["pid"]
        assert health["isolation"]["mechanism"] in ("cgroup-v1", "cgroup-v2",
                                                    "systemd-run-scope", "rlimit-as")


def test_token_and_path_escapes_over_real_http(tmp_path: Path) -> None:
    make_video(tmp_path / "uploads" / "clip.mp4")
    (tmp_path / "secret.mp4").write_bytes(b"secret")
    (tmp_path / "uploads" / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    config = _config(tmp_path, _free_port())
    with service(config, tmp_path / "service.log") as svc:
        assert httpx.post(f"{svc.url}/reverse", json={"key": "clip.mp4"},
                          timeout=5).status_code == 401
        for key in ("/etc/passwd", "../secret.mp4", "link.mp4"):
            response = httpx.post(f"{svc.url}/reverse", json={"key": key}, headers=AUTH,
                                  timeout=5)
            assert response.status_code == 400, key
        assert httpx.get(f"{svc.url}/jobs", headers=AUTH, timeout=5).json()["jobs"] == []


def test_sigkill_with_jobs_queued_and_one_running_then_restart_finishes_all(
        tmp_path: Path) -> None:
    keys = [f"clip{n}.mp4" for n in range(3)]
    for key in keys:
        make_video(tmp_path / "uploads" / key, seconds=6, size="320x240", rate=30)
    config = _config(tmp_path, _free_port())
    log = tmp_path / "service.log"
    with service(config, log) as svc:
        ids = [httpx.post(f"{svc.url}/reverse", json={"key": key}, headers=AUTH,
                          timeout=5).json()["id"] for key in keys]
        wait_for(lambda: httpx.get(f"{svc.url}/jobs?state=running", headers=AUTH,
                                   timeout=5).json()["jobs"], 30, "a job to run")
        # The reversal worker itself, not just the row: it is what must outlive the service.
        wait_for(lambda: [p for p in _ours(tmp_path)
                          if "vmkeeper.media.worker" in (p.info["cmdline"] or [])],
                 30, "the reversal worker to start")
        os.kill(svc.running.pid, signal.SIGKILL)  # the service only: its worker lives on
        svc.running.popen.wait(timeout=10)
    with service(config, log) as svc:
        jobs = [svc.wait_finished(job_id, timeout=180) for job_id in ids]
        assert [job["state"] for job in jobs] == ["done"] * 3, jobs
        assert jobs[0]["attempts"] in (1, 2)  # 1 if the orphan finished the output first
        assert all(job["attempts"] == 1 for job in jobs[1:])
        assert any(r.get("recovered") for r in svc.records())
    assert _ours(tmp_path) == []
