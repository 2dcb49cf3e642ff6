"""GET /v1/logs/{app}, POST /v1/bundle, GET /v1/diagnose/oom in-process: the CLI's objects
(its --json output, compared key for key), redacted, bounded, bad input in one sentence."""

from __future__ import annotations

import io
import json
import os
import stat
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.conftest import CliRun
from vmkeeper.agent import auth
from vmkeeper.agent.api import create_app
from vmkeeper.agent.runner import Runner
from vmkeeper.agent.store import Store
from vmkeeper.settings import load_settings

CORPUS = Path(__file__).resolve().parents[1] / "data" / "kernel"
DB_PASSWORD = "s3cr3t-Db-pa55w0rd-9Kq"
DUMP = [{"name": "backend-dev", "pm_cwd": "/srv/backend", "args": ["run", "start"],
         "env": {"DB_PASSWORD": DB_PASSWORD}, "DB_PASSWORD": DB_PASSWORD}]


class World:
    def __init__(self, tmp_path: Path) -> None:
        pm2_home = tmp_path / "pm2"
        (pm2_home / "logs").mkdir(parents=True)
        (pm2_home / "dump.pm2").write_text(json.dumps(DUMP))
        (pm2_home / "logs" / "backend-dev-out.log").write_text(
            "".join(f"line {n}\n" for n in range(30)) + f"connecting with {DB_PASSWORD}\n")
        self.config = tmp_path / "vmkeeper.toml"
        self.config.write_text(
            'public_url = "http://127.0.0.1:9"\n'
            f'state_dir = "{tmp_path / "state"}"\n'
            f'[pm2]\nhome = "{pm2_home}"\nbin = "pm2-not-installed"\n'
            f'[proxy]\nerror_log = "{tmp_path / "apache-error.log"}"\nport = 9\n'
            '[health]\ncheck_timeout_s = 2\nsupervisor = "pm2"\n')
        loaded = load_settings(self.config, env={})
        settings = loaded.settings
        store = Store(settings.state_dir)
        self.client = TestClient(create_app(settings, store, Runner(
            store, settings, settings.state_dir / "ops"), loaded=loaded))
        self.read = {"Authorization": "Bearer " + auth.add(
            settings.state_dir, "reader", auth.Scope.READ).token}
        self.state_dir = settings.state_dir


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def test_logs_are_the_cli_json_redacted_and_the_last_lines_only(
        world: World, cli: Callable[..., CliRun]) -> None:
    answer = world.client.get("/v1/logs/backend-dev?lines=5", headers=world.read)
    assert answer.status_code == 200
    report = answer.json()
    run = cli("--config", str(world.config), "logs", "backend-dev", "-n", "5", "--json")
    assert report == json.loads(run.stdout)
    texts = [line["text"] for line in report["lines"] if line["source"] == "backend-dev/out"]
    assert texts[:4] == ["line 26", "line 27", "line 28", "line 29"] and len(texts) == 5
    assert DB_PASSWORD not in answer.text and "connecting with" in texts[-1]


def test_logs_of_an_unknown_app_are_404_and_lines_are_bounded(world: World) -> None:
    unknown = world.client.get("/v1/logs/nope", headers=world.read)
    assert unknown.status_code == 404
    assert unknown.json()["detail"].startswith("No app named 'nope': use one of")
    escape = world.client.get("/v1/logs/..%2F..%2Fetc%2Fpasswd", headers=world.read)
    assert escape.status_code == 404 and "root:" not in escape.text
    for lines in ("0", "10001", "-1", "many"):
        bad = world.client.get(f"/v1/logs/backend-dev?lines={lines}", headers=world.read)
        assert bad.status_code == 422 and bad.json()["detail"].startswith("query.lines")
    assert world.client.get("/v1/logs/backend-dev").status_code == 401


def _fake_journalctl(folder: Path, log: Path) -> None:
    script = folder / "journalctl"
    script.write_text(f"#!/bin/sh\ncat {log}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)


def test_oom_is_the_cli_json_and_a_bad_since_is_422_before_any_log_is_read(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        cli: Callable[..., CliRun]) -> None:
    folder = tmp_path / "bin"
    folder.mkdir()
    _fake_journalctl(folder, CORPUS / "ab-av1-189.log")
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    answer = world.client.get("/v1/diagnose/oom", headers=world.read,
                              params={"since": "2000-01-01"})
    assert answer.status_code == 200
    report = answer.json()
    run = cli("--config", str(world.config), "diagnose", "oom", "--since", "2000-01-01",
              "--json")
    assert report == json.loads(run.stdout) and report["events"]
    for since in ("--output=/etc/passwd", "soon", "x" * 65):
        bad = world.client.get("/v1/diagnose/oom", headers=world.read, params={"since": since})
        assert bad.status_code == 422, bad.text
        detail = bad.json()["detail"]
        assert detail.count(". ") == 0 and "Traceback" not in detail
    assert "use 'YYYY-MM-DD HH:MM[:SS]'" in world.client.get(
        "/v1/diagnose/oom", headers=world.read, params={"since": "soon"}).json()["detail"]


def test_bundle_downloads_the_redacted_archive_and_leaves_nothing_behind(world: World) -> None:
    answer = world.client.post("/v1/bundle", json={"timeout_s": 20}, headers=world.read)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/gzip"
    assert "attachment" in answer.headers["content-disposition"]
    with tarfile.open(fileobj=io.BytesIO(answer.content), mode="r:gz") as archive:
        files = {m.name.split("/", 1)[1]: archive.extractfile(m).read().decode()  # type: ignore[union-attr]
                 for m in archive.getmembers() if m.isfile()}
    assert {"manifest.json", "pm2/dump.pm2", "logs/backend-dev-out.log"} <= set(files)
    manifest = json.loads(files["manifest.json"])
    assert manifest["config_file"] == str(world.config) and manifest["vmkeeper_version"]
    assert all(DB_PASSWORD not in text for text in files.values())
    assert int(answer.headers["x-bundle-files"]) == len(files)
    assert not list(world.state_dir.glob("bundle-*"))


def test_bundle_options_are_bounded(world: World) -> None:
    for body in ({"timeout_s": 0}, {"timeout_s": 1000}, {"lines": 0}, {"output": "/etc/x"}):
        bad = world.client.post("/v1/bundle", json=body, headers=world.read)
        assert bad.status_code == 422, body
    assert world.client.post("/v1/bundle").status_code == 401
