"""The CLI's edges under hostile or broken input: private crash logs without secrets, exit 3 when
a monitoring command cannot reach a verdict, standard JSON, deep or surrogate-laden JSON input,
output paths that are refused rather than created or overwritten, and private state files."""

from __future__ import annotations

import json
import os
import stat
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.conftest import CliRun
from vmkeeper.cli import health as health_cli
from vmkeeper.diagnose import bundle_sources
from vmkeeper.diagnose.bundle import Piece, Source
from vmkeeper.errors import InputError
from vmkeeper.jsonable import MAX_DEPTH, json_text, parse_json
from vmkeeper.settings import load_settings

TOKEN = "Kq3vX9mZpL2wR7tY5nB8cD4fG6hJ1sA0"


def _crash(monkeypatch: pytest.MonkeyPatch, command: str = "run_health") -> None:
    def explode(*_args: object, **_kwargs: object) -> object:
        raise ZeroDivisionError(f"boom while holding {TOKEN}")

    if command == "run_doctor":  # imported by the doctor command only when it runs
        from vmkeeper.health import doctor

        monkeypatch.setattr(doctor, command, explode)
        return
    if command == "run_health":  # the health command's look, imported when it runs
        from vmkeeper.health import service

        monkeypatch.setattr(service, "health_look", explode)
        return
    monkeypatch.setattr(health_cli, command, explode)


def test_crash_log_is_0600_and_has_no_secret_argv_values(
    cli: Callable[..., CliRun], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    _crash(monkeypatch)
    run = cli("--set", f"media.token={TOKEN}", f"--set=media.token={TOKEN}",
              "--set", 'apps.backend.env={API="x"}', "health")
    (log,) = (tmp_path / "vmkeeper").glob("vmkeeper-crash-*.log")
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    text = log.read_text()
    assert "ZeroDivisionError" in text and "media.token=***" in text
    assert TOKEN not in text and TOKEN not in run.stderr


def test_crash_log_is_not_written_through_a_planted_symlink(
    cli: Callable[..., CliRun], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    monkeypatch.setenv("XDG_STATE_HOME", str(state))
    victim = tmp_path / "victim"
    victim.write_text("keep me\n")
    folder = state / "vmkeeper"
    folder.mkdir(parents=True)
    for second in range(3):  # the name a crash within the next seconds would take
        name = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() + second))
        (folder / f"vmkeeper-crash-{name}-{os.getpid()}.log").symlink_to(victim)
    fallback = tmp_path / "tmp"  # the temp folder, should the state folder refuse: this test's
    fallback.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(fallback))
    _crash(monkeypatch)
    run = cli("health")
    assert run.code == 3
    assert victim.read_text() == "keep me\n"
    [log] = [p for p in folder.glob("vmkeeper-crash-*.log") if not p.is_symlink()]
    assert "boom while holding" in log.read_text()  # the next free name, beside the planted
    assert list(fallback.iterdir()) == []


def test_an_internal_failure_of_health_or_doctor_exits_3_unknown(
    cli: Callable[..., CliRun], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    _crash(monkeypatch, "run_health")
    _crash(monkeypatch, "run_doctor")
    for command in ("health", "doctor"):
        run = cli(command, "--json")
        assert run.code == 3, (command, run)
        assert "failed unexpectedly" in run.stderr and "Traceback" not in run.stderr
    # Two crashes of one process, most likely within one second: two logs, both in the state
    # folder (the second name taken, not /tmp).
    assert len(list((tmp_path / "vmkeeper").glob("vmkeeper-crash-*.log"))) == 2


def test_health_with_an_infinite_timeout_is_one_sentence_and_unknown(
    cli: Callable[..., CliRun],
) -> None:
    run = cli("--set", "health.check_timeout_s=inf", "health")
    assert run.code == 3
    assert "health.check_timeout_s" in run.stderr and "finite" in run.stderr
    assert "unexpectedly" not in run.stderr


def test_health_prometheus_into_a_missing_folder_is_refused_not_created(
    cli: Callable[..., CliRun], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _crash(monkeypatch)  # refused before any check runs
    target = tmp_path / "missing" / "vmkeeper.prom"
    run = cli("health", "--prometheus", str(target))
    assert run.code == 3 and "does not exist" in run.stderr
    assert not target.parent.exists()


def test_json_output_is_standard_json() -> None:
    with pytest.raises(ValueError):
        json_text({"seconds": float("inf")})
    text = json_text({"name": "\ud800 lone", "ok": "≥ fine"})
    assert json.loads(text)["ok"] == "≥ fine"
    text.encode("utf-8")  # a lone surrogate is written as an escape, not as invalid UTF-8


@pytest.mark.parametrize("text", ["[" * 950 + "]" * 950, '{"a":' * 900 + "1" + "}" * 900,
                                  "[" * 200_000 + "]" * 200_000])
def test_deeply_nested_json_is_one_clear_error(text: str) -> None:
    with pytest.raises(InputError, match=f"deeper than {MAX_DEPTH} levels"):
        parse_json(text, "dump.pm2")


@pytest.mark.parametrize("text", ['{"a": "\\ud800"}', '{"\\udfff": 1}', '["ok", ["\\udc00x"]]'])
def test_lone_surrogates_in_json_are_one_clear_error(text: str) -> None:
    with pytest.raises(InputError, match="lone UTF-16 surrogate"):
        parse_json(text, "dump.pm2")


@pytest.mark.parametrize("text", ['{"a": NaN}', "[Infinity]", "-Infinity"])
def test_nan_and_infinity_in_json_input_are_refused(text: str) -> None:
    with pytest.raises(InputError, match="not JSON"):
        parse_json(text, "dump.pm2")


def test_ordinary_json_parses_unchanged() -> None:
    document = {"a": [1, {"b": "x\u00e9\U0001f600"}], "c": None}
    assert parse_json(json.dumps(document), "x") == document


@pytest.mark.parametrize("content", ["[" * 950 + "]" * 950,
                                     '{"password":"hunter2-Zq81","name":"\\ud800"}'])
def test_redact_on_hostile_json_does_not_crash(
    cli: Callable[..., CliRun], tmp_path: Path, content: str
) -> None:
    source = tmp_path / "dump.json"
    source.write_text(content)
    run = cli("redact", str(source))
    assert "unexpectedly" not in run.stderr, run.stderr
    assert "hunter2-Zq81" not in run.stdout


def test_health_reads_a_hostile_dump_as_a_dump_problem(tmp_path: Path) -> None:
    from vmkeeper.adapters.pm2 import Pm2OutputError, parse_dump

    with pytest.raises(Pm2OutputError, match="deeper than"):
        parse_dump("[" * 950 + "]" * 950)
    with pytest.raises(Pm2OutputError, match="surrogate"):
        parse_dump('[{"name": "\\ud800"}]')


def test_bundle_refuses_an_existing_output_unless_forced(
    cli: Callable[..., CliRun], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from vmkeeper.diagnose import bundle_sources

    monkeypatch.setattr(bundle_sources, "default_sources", lambda *_a, **_k: [
        Source("note", lambda: [Piece("note.txt", "hello\n")])])
    existing = tmp_path / "earlier.tar.gz"
    existing.write_bytes(b"an earlier bundle")
    run = cli("bundle", "-o", str(existing))
    assert run.code == 2 and "already exists" in run.stderr and "--force" in run.stderr
    assert existing.read_bytes() == b"an earlier bundle"
    link = tmp_path / "link.tar.gz"
    link.symlink_to(tmp_path / "nowhere")
    assert cli("bundle", "-o", str(link)).code == 2
    run = cli("bundle", "-o", str(existing), "--force", "--json")
    assert run.code == 0, run
    assert existing.read_bytes()[:2] == b"\x1f\x8b"  # now a gzip archive


def _dump_naming(tmp_path: Path, outside: Path) -> Path:
    home = tmp_path / "pm2"
    (home / "logs").mkdir(parents=True)
    inside = home / "logs" / "backend-dev-out.log"
    inside.write_text("inside line\n")
    (home / "dump.pm2").write_text(json.dumps([{
        "name": "backend-dev", "pm_out_log_path": str(inside),
        "pm_err_log_path": str(outside)}]))
    return home


def test_bundle_reads_only_logs_the_pm2_user_could(tmp_path: Path) -> None:
    # As root, a file owned by root outside PM2's logs, named by a PM2 user's dump.pm2; as any
    # other user, a root-owned readable file stands in for it.
    home = _dump_naming(tmp_path, outside := tmp_path / "shadow")
    if os.geteuid() == 0:
        outside.write_text("root:secret-hash\n")
        outside.chmod(0o600)
        os.chown(home, 4242, 4242)
    else:
        outside = Path("/etc/passwd")
        _dump_naming(tmp_path / "b", outside)
        home = tmp_path / "b" / "pm2"
    settings = load_settings(env={}, flags={
        "pm2.home": str(home), "proxy.error_log": str(tmp_path / "no-apache.log")}).settings
    gathered = bundle_sources.logs(settings, 10)
    pieces = {g.name: g.text for g in gathered if isinstance(g, Piece)}
    skipped = {g.source: g.reason for g in gathered if not isinstance(g, Piece)}
    assert pieces["logs/backend-dev-out.log"] == "inside line\n"
    reason = skipped["log backend-dev/error"]
    assert "not read" in reason and "PM2 user" in reason
    assert all("secret-hash" not in text for text in pieces.values())


def test_a_fifo_named_as_a_log_is_skipped_without_hanging(tmp_path: Path) -> None:
    fifo = tmp_path / "pm2" / "logs" / "fifo.log"
    home = _dump_naming(tmp_path, fifo)
    os.mkfifo(fifo)
    settings = load_settings(env={}, flags={
        "pm2.home": str(home), "proxy.error_log": str(tmp_path / "no-apache.log")}).settings
    gathered = bundle_sources.logs(settings, 10)
    reasons = [g.reason for g in gathered if not isinstance(g, Piece)]
    assert any("not a regular file" in reason for reason in reasons)


def test_state_files_are_private(tmp_path: Path) -> None:
    from vmkeeper.media.jobqueue import ServiceLock
    from vmkeeper.media.jobs import JobStore
    from vmkeeper.releases import history, lock

    old_umask = os.umask(0o022)
    try:
        store = JobStore(tmp_path / "media" / "jobs.db", time.time)
        store.close()
        service = ServiceLock(tmp_path / "media" / "service.lock")
        service.acquire()
        service.release()
        with lock.acquire(tmp_path / "releases", "deploy"):
            pass
        history.append(tmp_path / "releases", {"run": "a", "phase": "started"})
    finally:
        os.umask(old_umask)
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"jobs.db", "service.lock", lock.LOCK_NAME,
                                       history.history_path(tmp_path).name}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_an_error_quoting_rich_markup_is_printed_as_is(
    cli: Callable[..., CliRun], tmp_path: Path
) -> None:
    # "[/x]" is a closing tag to rich: printed as markup, the error itself raised MarkupError.
    missing = tmp_path / "[/x]" / "vmkeeper.toml"
    run = cli("--config", str(missing), "config", "show")
    assert run.code == 2 and f"{missing} does not exist" in run.stderr.replace("\n", "")
