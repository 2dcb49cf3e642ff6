from __future__ import annotations

import io
import json
import re
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from vmkeeper import flock, logrecord, logs, proc
from vmkeeper.media import supervisor
from vmkeeper.media.jobqueue import json_logger
from vmkeeper.releases import history

STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def test_timestamp_is_utc_iso_with_milliseconds_and_z() -> None:
    moment = datetime(2026, 12, 1, 21, 30, 38, 123456, tzinfo=timezone(timedelta(hours=1)))
    assert logrecord.timestamp(moment) == "2026-12-01T20:30:38.123Z"
    assert STAMP.match(logrecord.timestamp())
    assert STAMP.match(logrecord.timestamp(datetime.now(UTC)))


def test_line_is_one_json_object_with_the_fixed_keys_first() -> None:
    text = logrecord.line("reverse.finished", level="warning", job="j1", path=Path("/srv/a"))
    assert "\n" not in text
    data = json.loads(text)
    assert list(data)[:3] == ["timestamp", "level", "event"]
    assert data["event"] == "reverse.finished" and data["level"] == "warning"
    assert data["job"] == "j1" and data["path"] == "/srv/a"  # not JSON: written as text
    assert STAMP.match(data["timestamp"])


def test_a_field_cannot_overwrite_the_fixed_keys() -> None:
    data = logrecord.record("real", timestamp="forged")
    assert data["event"] == "real" and STAMP.match(data["timestamp"])


def test_importing_it_pulls_in_nothing_outside_the_standard_library() -> None:
    # The stdlib-only supervisor imports it: no vmkeeper __init__, no structlog, no pydantic.
    source = Path(logrecord.__file__).parent.parent
    code = ("import sys, types; p = types.ModuleType('vmkeeper'); "
            f"p.__path__ = [{str(source / 'vmkeeper')!r}]; sys.modules['vmkeeper'] = p; "
            "import vmkeeper.logrecord; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('structlog', 'pydantic', 'psutil', 'rich', 'typer')))")
    out = proc.run([sys.executable, "-S", "-c", code], timeout=30).stdout
    assert out.strip() == "[]"


def test_the_cli_structlog_records_have_the_same_shape(capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure("info", "json")
    try:
        logs.get_logger("vmkeeper.test").info("deploy.step", step="build", seconds=1.5)
    finally:
        logs.configure()
    data = json.loads(capsys.readouterr().err)
    assert list(data) == ["timestamp", "level", "event", "step", "seconds"]
    assert (data["level"], data["event"], data["step"]) == ("info", "deploy.step", "build")
    assert STAMP.match(data["timestamp"])


def test_the_media_service_audit_lines_have_the_same_shape() -> None:
    stream = io.StringIO()
    json_logger(stream)("job.finished", job="j1", state="succeeded")
    data = json.loads(stream.getvalue())
    assert list(data)[:3] == ["timestamp", "level", "event"]
    assert data["event"] == "job.finished" and STAMP.match(data["timestamp"])


def test_history_and_lock_holders_spell_time_the_same_way(tmp_path: Path) -> None:
    assert STAMP.match(history.append(tmp_path, {"run": "a", "phase": "started"})["time"])
    with flock.hold(tmp_path / "x.lock", "deploy") as held:
        assert STAMP.match(held.holder.since)


def test_a_run_that_logs_nothing_never_imports_structlog() -> None:
    code = ("import sys\nfrom vmkeeper import logs, proc\nlogs.configure()\n"
            "proc.run(['true'], timeout=10)\n"
            "print('structlog' in sys.modules)\n"
            "logs.get_logger('vmkeeper.test').warning('disk.low', free_pct=3)\n")
    done = proc.run([sys.executable, "-c", code], timeout=30)
    assert done.stdout.strip() == "False"
    assert "disk.low" in done.stderr and "free_pct=3" in done.stderr


def test_the_reversal_record_has_the_same_shape_in_process_and_in_the_supervisor(
        capsys: pytest.CaptureFixture[str]) -> None:
    supervisor.JsonLog().warning("media.reverse", ok=False, error="too long")
    data = json.loads(capsys.readouterr().err)
    assert list(data)[:3] == ["timestamp", "level", "event"]
    assert (data["level"], data["event"], data["ok"]) == ("warning", "media.reverse", False)
    assert STAMP.match(data["timestamp"])
