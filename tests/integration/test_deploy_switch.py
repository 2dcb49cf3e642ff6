"""The zero-downtime switch against the sandbox's real PM2 and Apache (with vmkeeper's snippet),
with the zero-dependency fixture frontend: no failed request, in-flight requests finish, the
runbook's end state, and the runbook's switch where Apache lacks the snippet."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Self

import httpx
import pytest

from tests.integration.deploy_support import (
    DeployBed,
    assert_runbook_end_state,
    bed_fixtures,
    child_env,
)
from tests.support.waiting import wait_for
from vmkeeper import proc

pytestmark = pytest.mark.slow


bed_base, bed = bed_fixtures("switchbed")


def apache_errors(bed: DeployBed) -> list[str]:
    """The proxy's complaints, for a failure's message."""
    log = bed.sandbox.layout.apache_error_log.read_text(errors="replace").splitlines()
    return [line for line in log if "proxy" in line][-8:]


class KeepAliveLoad:
    """Four keep-alive clients through Apache; every answer that is not the page is a failure."""

    def __init__(self, url: str, clients: int = 4, interval: float = 0.05) -> None:
        self.url, self.interval = url, interval
        self.sent = 0
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, daemon=True) for _ in range(clients)]

    def run(self) -> None:
        with httpx.Client(timeout=10) as client:
            while not self.stop.is_set():
                try:
                    response = client.get(self.url)
                    if response.status_code != 200 or "vmkeeper fixture" not in response.text:
                        self.failures.append(f"HTTP {response.status_code}")
                except httpx.HTTPError as error:
                    self.failures.append(repr(error))
                self.sent += 1
                self.stop.wait(self.interval)

    def __enter__(self) -> Self:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=15)


def test_deploys_and_rollbacks_fail_no_request_and_end_in_the_runbook_state(
    bed: DeployBed,
) -> None:
    with KeepAliveLoad(bed.site) as load:
        for number in range(2):
            bed.commit(f"zero downtime {number}")
            run, data = bed.deploy()
            assert run.code == 0, run.stderr
            assert data["failed_requests"] == 0 and data["longest_gap_s"] is not None, (
                data, apache_errors(bed))
            assert any("zero-downtime switch in" in n for n in data["notes"]), data["notes"]
            assert_runbook_end_state(bed, data["release"])
        other = next(r["id"] for r in bed.releases_json()["releases"] if not r["active"])
        rolled = bed.run("rollback", other, "--json")
        assert rolled.code == 0, rolled.stderr
        back = json.loads(rolled.stdout)
        assert back["failed_requests"] == 0 and back["active"] == other
        assert_runbook_end_state(bed, other)
    assert load.sent > 100
    assert load.failures == [], apache_errors(bed)


def test_a_slow_request_started_before_the_switch_finishes_with_200(
    bed: DeployBed, tmp_path: Path
) -> None:
    old_dir = bed.sandbox.pm2.app("frontend-dev").cwd  # type: ignore[union-attr]
    bed.commit("slow request")
    flag = tmp_path / "paused"
    answers: list[httpx.Response] = []

    def slow() -> None:
        answers.append(httpx.get(bed.site + "slow?ms=3000", timeout=30))

    # Paused just before Apache flips to the new release: the slow request is on the old one.
    with proc.start(bed.child_argv("deploy", "--json"), timeout=300,
                    env=child_env("switch/flip", flag, seconds=1)) as child:
        wait_for(flag.exists, 90, "the deploy to reach the flip")
        request = threading.Thread(target=slow)
        request.start()
        out, _err = child.popen.communicate(timeout=240)
        request.join(timeout=30)
    data = json.loads(out)
    assert data["ok"], data
    assert answers and answers[0].status_code == 200
    assert f"from {old_dir}" in answers[0].text  # served to the end by the old release
    drained = next(n for n in data["notes"] if "drained in" in n)
    assert float(drained.split("drained in ")[1].split(" s")[0]) >= 1.0, drained


def test_without_the_snippet_the_deploy_says_so_and_counts_failures(
    bed: DeployBed,
) -> None:
    sandbox = bed.sandbox
    config = sandbox.layout.apache_config
    original = config.read_text()
    without = original.replace(
        f'IncludeOptional "{sandbox.settings.proxy.frontend_include}"', "")
    assert without != original
    config.write_text(without)
    sandbox.apache.stop()
    sandbox.apache.start()
    try:
        bed.commit("no snippet")
        run, data = bed.deploy()
        assert run.code == 0, run.stderr
        assert any("switch is the runbook's" in n and "vmkeeper doctor" in n for n in data["notes"])
        assert isinstance(data["failed_requests"], int) and data["longest_gap_s"] is not None
        doctor = json.loads(bed.run("doctor", "--json").stdout)
        check = next(c for c in doctor["checks"] if c["name"] == "apache:switch")
        assert check["status"] == "warn" and "IncludeOptional" in check["summary"]
    finally:
        config.write_text(original)
        sandbox.apache.stop()
        sandbox.apache.start()
    doctor = json.loads(bed.run("doctor", "--json").stdout)
    assert next(c for c in doctor["checks"] if c["name"] == "apache:switch")["status"] == "ok"
