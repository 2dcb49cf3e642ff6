"""Source selection with scripted journalctl/dmesg on PATH, and the `diagnose oom` CLI."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from vmkeeper.adapters.kernel_log import KernelLogUnavailable, open_kernel_log
from vmkeeper.cli.main import main

CORPUS = Path(__file__).resolve().parents[1] / "data" / "kernel"


def _script(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir()
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    return folder


def test_journal_is_read_when_it_has_entries(fake_bin: Path) -> None:
    _script(fake_bin, "journalctl", f"echo \"$@\" >&2; cat {CORPUS / 'ab-av1-189.log'}")
    with open_kernel_log(since="2026-06-12 03:00", until="2026-06-12 04:00") as log:
        lines = b"".join(log.chunks).splitlines()
    assert log.source.startswith("journalctl -k --no-pager -o short-iso --since 2026-06-12 03:00")
    assert log.local is True
    assert len(lines) == 4


def test_empty_or_refused_sources_fall_through_to_syslog_files(fake_bin: Path,
                                                               tmp_path: Path) -> None:
    _script(fake_bin, "journalctl",
            "echo '-- No entries --'; echo 'No journal files were found.' >&2")
    _script(fake_bin, "dmesg",
            "echo 'dmesg: read kernel buffer failed: Operation not permitted' >&2; exit 1")
    kern = tmp_path / "kern.log"
    kern.write_text((CORPUS / "docker-for-linux-1001.log").read_text())
    with open_kernel_log(syslog_files=[tmp_path / "missing.log", kern]) as log:
        count = sum(chunk.count(b"\n") for chunk in log.chunks)
    assert log.source == str(kern)
    assert count == 8
    assert log.skipped == [
        "journalctl: No journal files were found.",
        "dmesg: dmesg: read kernel buffer failed: Operation not permitted",
        f"{tmp_path / 'missing.log'}: does not exist",
    ]


def test_journal_with_no_entries_in_the_window_is_an_answer(fake_bin: Path) -> None:
    _script(fake_bin, "journalctl", "echo '-- No entries --'")
    with open_kernel_log() as log:
        assert list(log.chunks) == []
    assert log.source.startswith("journalctl")


def test_no_source_at_all_is_an_error_naming_each(fake_bin: Path, tmp_path: Path) -> None:
    _script(fake_bin, "journalctl", "exit 1")
    _script(fake_bin, "dmesg", "exit 1")
    with pytest.raises(KernelLogUnavailable) as error, \
            open_kernel_log(syslog_files=[tmp_path / "nope"]):
        pass
    assert "journalctl" in str(error.value) and "dmesg" in str(error.value)
    assert "--file" in str(error.value)


def test_cli_json_has_the_design_keys(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["diagnose", "oom", "--file", str(CORPUS / "ert-7797-dmesg-iso.log"), "--json"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"events", "units", "verdict"}
    (event,) = out["events"]
    assert set(event) >= {"time", "victim", "constraint", "memcg", "invoker"}
    assert set(event["victim"]) >= {
        "name", "pid", "uid", "total_vm_kb", "anon_rss_kb", "file_rss_kb", "shmem_rss_kb"
    }
    assert event["victim"]["anon_rss_kb"] == 60356340


def test_cli_says_no_oom_kill_found_and_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["diagnose", "oom", "--file", str(CORPUS / "oomd-125.log")])
    assert code == 0
    assert "no OOM kill found" in capsys.readouterr().out


def test_cli_reads_stdin(monkeypatch: pytest.MonkeyPatch,
                         capsys: pytest.CaptureFixture[str]) -> None:
    import io

    monkeypatch.setattr("sys.stdin", io.StringIO((CORPUS / "pm2-5941.log").read_text()))
    assert main(["diagnose", "oom", "-", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["source"] == "stdin"
    assert out["events"][0]["units"] == ["pm2-root.service"]


@pytest.mark.parametrize("target", ["missing.log", "."])
def test_cli_bad_file_is_a_usage_error_without_traceback(
    target: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["diagnose", "oom", "--file", str(tmp_path / target)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and str(tmp_path) in err


def test_cli_bad_since_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["diagnose", "oom", "--since", "last tuesday-ish",
                 "--file", str(CORPUS / "pm2-5941.log")])
    assert code == 2
    assert "cannot read the time" in capsys.readouterr().err
