"""The bundle service with fake collectors: skips, timeouts, redaction of every file, the write."""

from __future__ import annotations

import base64
import json
import stat
import tarfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import CliRun
from vmkeeper.diagnose.archive import BundleError
from vmkeeper.diagnose.bundle import (
    BundleOptions,
    Piece,
    Skipped,
    Source,
    create_bundle,
)
from vmkeeper.redact import DocumentKind

NOW = datetime(2026, 6, 12, 3, 14, 15, tzinfo=UTC)
DB_PASSWORD = "s3cr3t-Db-pa55w0rd-9Kq"
API_KEY = "sk-testA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6"

DUMP = [
    {
        "name": "backend-dev",
        "pm_cwd": "/home/ubuntu/executor/workspace/backend",
        "env": {"NODE_ENV": "dev_stage", "PORT": "3000", "DB_PASSWORD": DB_PASSWORD,
                "OPENAI_API_KEY": API_KEY, "QUOTED_SECRET": 'he said "x\\y" 9Zq81xLm'},
        "DB_PASSWORD": DB_PASSWORD,
        "args": ["run", "start"],
    }
]
# The same value printed without its name: by an app into its log, URL-encoded, in base64.
LOG = (
    "2026-06-12T03:14:00 backend-dev connecting with " + DB_PASSWORD + "\n"
    "GET /callback?p=" + quote(DB_PASSWORD, safe="") + " 302\n"
    "basic " + base64.b64encode(DB_PASSWORD.encode()).decode() + "\n"
    "smtp login SMTP_PASS=hunter2-smtp-Xy9 ok\n"
    "listening on port 3000\n"
)


def _source(name: str, *pieces: Piece | Skipped) -> Source:
    return Source(name, lambda: list(pieces))


def _raises(name: str, error: Exception) -> Source:
    def collect() -> list[Piece | Skipped]:
        raise error

    return Source(name, collect)


def _extract(path: Path) -> dict[str, str]:
    with tarfile.open(path, "r:gz") as archive:
        files = {}
        for member in archive.getmembers():
            if member.isfile():
                handle = archive.extractfile(member)
                assert handle is not None
                # Strip the bundle's own top folder: vmkeeper-bundle-<stamp>/
                files[member.name.split("/", 1)[1]] = handle.read().decode()
        return files


def _options(tmp_path: Path, **changes: object) -> BundleOptions:
    values: dict[str, object] = {"output": tmp_path / "b.tar.gz", "timeout_s": 5.0, "now": NOW}
    values.update(changes)
    return BundleOptions(**values)  # type: ignore[arg-type]


def test_a_source_that_raises_is_skipped_with_its_reason_and_the_rest_is_bundled(
        tmp_path: Path) -> None:
    sources = [
        _source("status", Piece("status.json", '{"apps": []}', DocumentKind.JSON)),
        _raises("dump.pm2", FileNotFoundError(2, "No such file", "/home/ubuntu/.pm2/dump.pm2")),
        _raises("oom", RuntimeError("journal exploded")),
        _source("free", Piece("host/free.txt", "Mem: 3.8Gi\n")),
    ]
    result = create_bundle(sources, _options(tmp_path))
    assert [s.source for s in result.skipped] == ["dump.pm2", "oom"]
    assert result.skipped[0].reason == "/home/ubuntu/.pm2/dump.pm2 does not exist"
    assert "journal exploded" in result.skipped[1].reason
    files = _extract(result.path)
    assert set(files) == {"manifest.json", "status.json", "host/free.txt"}
    manifest = json.loads(files["manifest.json"])
    assert [f["name"] for f in manifest["files"]] == ["status.json", "host/free.txt"]
    assert manifest["skipped"] == [
        {"source": "dump.pm2", "reason": "/home/ubuntu/.pm2/dump.pm2 does not exist"},
        {"source": "oom", "reason": "RuntimeError: journal exploded"},
    ]


def test_a_partial_skip_inside_a_source_is_listed_beside_what_it_collected(
        tmp_path: Path) -> None:
    sources = [_source("logs", Piece("logs/a-out.log", "up\n"),
                       Skipped("log a/error", "/x/a-error.log does not exist"))]
    result = create_bundle(sources, _options(tmp_path))
    assert [f.name for f in result.files] == ["manifest.json", "logs/a-out.log"]
    assert result.skipped == [Skipped("log a/error", "/x/a-error.log does not exist")]


def test_a_source_that_hangs_is_skipped_at_its_deadline_and_does_not_block_the_others(
        tmp_path: Path) -> None:
    release = threading.Event()

    def hang() -> list[Piece | Skipped]:
        release.wait(30)
        return [Piece("never.txt", "late")]

    sources = [Source(f"stuck {n}", hang) for n in range(3)] + [
        _source("df -h", Piece("host/df-h.txt", "/dev/sda1 40G\n"))]
    started = time.monotonic()
    try:
        result = create_bundle(sources, _options(tmp_path, timeout_s=0.3, workers=3))
    finally:
        release.set()
    assert time.monotonic() - started < 5
    assert {s.source: s.reason for s in result.skipped} == {
        f"stuck {n}": "timed out after 0.3 s" for n in range(3)}
    assert "host/df-h.txt" in _extract(result.path)


def test_every_file_is_redacted_json_stays_json_and_non_secrets_stay(tmp_path: Path) -> None:
    sources = [
        _source("dump.pm2", Piece("pm2/dump.pm2", json.dumps(DUMP, indent=2), DocumentKind.JSON)),
        _source("logs", Piece("logs/backend-dev-out.log", LOG)),
        _source("settings", Piece("settings.json", json.dumps(
            {"media": {"token": "media-agent-token-Qw81"}, "public_url": "http://x"}),
            DocumentKind.JSON)),
        _source("oops", Piece("broken.json", '{"DB_PASSWORD": "' + DB_PASSWORD + '",',
                              DocumentKind.JSON)),
    ]
    result = create_bundle(sources, _options(tmp_path))
    files = _extract(result.path)
    forms = [DB_PASSWORD, API_KEY, quote(DB_PASSWORD, safe=""),
             base64.b64encode(DB_PASSWORD.encode()).decode(), "hunter2-smtp-Xy9",
             "media-agent-token-Qw81", "9Zq81xLm"]
    for name, text in files.items():
        for form in forms:
            assert form not in text, f"{form!r} leaked into {name}"
    dump = json.loads(files["pm2/dump.pm2"])
    assert dump[0]["name"] == "backend-dev"
    assert dump[0]["env"]["NODE_ENV"] == "dev_stage" and dump[0]["env"]["PORT"] == "3000"
    assert dump[0]["pm_cwd"] == "/home/ubuntu/executor/workspace/backend"
    assert dump[0]["env"]["DB_PASSWORD"] == "«redacted:password»"
    assert set(dump[0]) == set(DUMP[0]) and set(dump[0]["env"]) == set(DUMP[0]["env"])
    log = files["logs/backend-dev-out.log"].splitlines()
    assert len(log) == len(LOG.splitlines())
    assert log[0] == "2026-06-12T03:14:00 backend-dev connecting with «redacted:password»"
    assert log[-1] == "listening on port 3000"
    json.loads(files["settings.json"])
    counts = {f.name: f.redactions for f in result.files}
    assert counts["logs/backend-dev-out.log"] >= 4 and counts["pm2/dump.pm2"] >= 3


def test_a_secret_in_a_skip_reason_is_redacted_too(tmp_path: Path) -> None:
    sources = [_raises("db", RuntimeError(
        "could not reach postgres://app:" + DB_PASSWORD + "@127.0.0.1/app"))]
    result = create_bundle(sources, _options(tmp_path))
    assert DB_PASSWORD not in result.skipped[0].reason
    assert DB_PASSWORD not in _extract(result.path)["manifest.json"]


def test_the_archive_is_0600_with_a_private_folder_and_no_temporary_left(
        tmp_path: Path) -> None:
    result = create_bundle([_source("free", Piece("host/free.txt", "Mem\n"))],
                           _options(tmp_path))
    assert stat.S_IMODE(result.path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar.gz"]
    with tarfile.open(result.path, "r:gz") as archive:
        modes = {m.name: (m.isdir(), stat.S_IMODE(m.mode)) for m in archive.getmembers()}
    assert modes["b"] == (True, 0o700)
    assert modes["b/host"] == (True, 0o700)
    assert modes["b/host/free.txt"] == (False, 0o600)


def test_a_failed_write_leaves_the_previous_file_and_no_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "b.tar.gz"
    target.write_text("previous bundle")
    original = tarfile.TarFile.addfile
    calls = []

    def failing(self: tarfile.TarFile, *args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) > 2:
            raise OSError(28, "No space left on device")
        original(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(tarfile.TarFile, "addfile", failing)
    with pytest.raises(BundleError, match="No space left"):
        create_bundle([_source("free", Piece("host/free.txt", "Mem\n")),
                       _source("df", Piece("host/df.txt", "40G\n"))], _options(tmp_path))
    assert target.read_text() == "previous bundle"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.tar.gz"]


def test_the_default_path_is_a_utc_stamped_name_in_the_working_folder(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = create_bundle([_source("free", Piece("host/free.txt", "Mem\n"))],
                           BundleOptions(now=NOW))
    assert result.path == tmp_path / "vmkeeper-bundle-20260612T031415Z.tar.gz"
    folder = tmp_path / "out"
    folder.mkdir()
    inside = create_bundle([_source("free", Piece("host/free.txt", "Mem\n"))],
                           BundleOptions(output=folder, now=NOW))
    assert inside.path == folder / "vmkeeper-bundle-20260612T031415Z.tar.gz"
    with tarfile.open(inside.path) as archive:
        assert "vmkeeper-bundle-20260612T031415Z/manifest.json" in archive.getnames()


def test_an_output_in_a_missing_folder_is_a_usage_error_before_collecting(
        tmp_path: Path) -> None:
    collected = []
    source = Source("free", lambda: collected.append(1) or [Piece("f.txt", "x")])
    with pytest.raises(BundleError, match="does not exist") as raised:
        create_bundle([source], _options(tmp_path, output=tmp_path / "no" / "b.tar.gz"))
    assert raised.value.exit_code == 2 and not collected


def test_names_cannot_escape_the_bundle_folder_or_overwrite_each_other(tmp_path: Path) -> None:
    result = create_bundle([_source("logs", Piece("../../etc/x.log", "a\n"),
                                    Piece("logs/a.log", "b\n"), Piece("logs/a.log", "c\n"))],
                           _options(tmp_path))
    assert [f.name for f in result.files] == ["manifest.json", "etc/x.log", "logs/a.log",
                                              "logs/a-2.log"]


# ------------------------------------------------------------------------------ the CLI

def _config(tmp_path: Path) -> Path:
    pm2_home = tmp_path / "pm2"
    (pm2_home / "logs").mkdir(parents=True)
    (pm2_home / "dump.pm2").write_text(json.dumps(DUMP, indent=2))
    (pm2_home / "logs" / "backend-dev-out.log").write_text(LOG)
    config = tmp_path / "vmkeeper.toml"
    config.write_text(
        'public_url = "http://127.0.0.1:9"\n'
        f'state_dir = "{tmp_path / "state"}"\n'
        "[pm2]\n"
        f'home = "{pm2_home}"\nbin = "pm2-not-installed"\n'
        "[proxy]\n"
        f'error_log = "{tmp_path / "apache-error.log"}"\nport = 9\n'
        "[health]\ncheck_timeout_s = 2\nsupervisor = \"pm2\"\n"
    )
    return config


def test_cli_bundle_json_lists_path_files_and_skipped_and_redacts(
        tmp_path: Path, cli: Callable[..., CliRun]) -> None:
    out = tmp_path / "incident.tar.gz"
    run = cli("--config", str(_config(tmp_path)), "bundle", "-o", str(out), "--json",
              "--timeout", "20")
    assert run.code == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["path"] == str(out)
    names = {f["name"] for f in result["files"]}
    assert {"manifest.json", "pm2/dump.pm2", "logs/backend-dev-out.log", "health.json",
            "status.json", "settings.json", "host/df-h.txt", "versions.json"} <= names
    skipped = {s["source"]: s["reason"] for s in result["skipped"]}
    assert "no PM2 daemon" in skipped["pm2 jlist"]
    assert "no journal of pm2-ubuntu.service" in skipped["pm2 unit journal"]
    assert "pm2-not-installed" in skipped["pm2 version"]
    files = _extract(out)
    for text in files.values():
        assert DB_PASSWORD not in text and API_KEY not in text
    json.loads(files["health.json"])
    assert json.loads(files["pm2/dump.pm2"])[0]["env"]["NODE_ENV"] == "dev_stage"


def test_cli_bundle_human_output_says_what_was_collected_and_skipped(
        tmp_path: Path, cli: Callable[..., CliRun]) -> None:
    out = tmp_path / "incident.tar.gz"
    run = cli("--config", str(_config(tmp_path)), "bundle", "-o", str(out))
    assert run.code == 0, run.stderr
    assert "collected pm2/dump.pm2" in run.stdout
    assert "skipped pm2 jlist: no PM2 daemon runs" in run.stdout
    assert f"wrote {out}" in run.stdout.replace("\n", "")

