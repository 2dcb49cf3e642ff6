from __future__ import annotations

import os
import time
from pathlib import Path

import psutil
import pytest

from tests.support.waiting import wait_for
from vmkeeper import proc
from vmkeeper.errors import CommandFailed, CommandNotFound, CommandTimeout


def test_run_returns_frozen_result_with_output_and_code() -> None:
    result = proc.run(["sh", "-c", "echo out; echo err >&2"], timeout=10)
    assert result.returncode == 0
    assert result.stdout == "out\n"
    assert result.stderr == "err\n"
    assert result.argv == ("sh", "-c", "echo out; echo err >&2")
    with pytest.raises(AttributeError):
        result.returncode = 1  # type: ignore[misc]


def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    script = f"sleep 300 & echo $! > {pid_file}; wait"
    started = time.monotonic()
    with pytest.raises(CommandTimeout) as error:
        proc.run(["sh", "-c", script], timeout=1)
    assert time.monotonic() - started < 10
    assert "timed out after 1 s" in str(error.value)
    grandchild = int(pid_file.read_text())

    def gone() -> bool:
        try:
            return psutil.Process(grandchild).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True

    wait_for(gone, 5, "the sleep started by the child to end with the timeout")


def test_missing_program_raises_command_not_found() -> None:
    with pytest.raises(CommandNotFound) as error:
        proc.run(["vmkeeper-no-such-program"], timeout=5)
    assert "vmkeeper-no-such-program" in str(error.value)


def test_failing_program_shows_command_code_and_tail() -> None:
    with pytest.raises(CommandFailed) as error:
        proc.run(["sh", "-c", "for i in $(seq 1 50); do echo line$i; done; exit 3"], timeout=5)
    message = str(error.value)
    assert "exited with code 3" in message
    assert "line50" in message and "line1\n" not in message


def test_check_false_returns_the_failure() -> None:
    result = proc.run(["sh", "-c", "exit 4"], timeout=5, check=False)
    assert result.returncode == 4 and not result.ok


def test_secrets_are_masked_in_displayed_argv() -> None:
    shown = proc.display(["env", "DB_PASSWORD=hunter2", "curl", "https://u:pw123@host/x"])
    assert "hunter2" not in shown and "pw123" not in shown
    assert "DB_PASSWORD=***" in shown


def test_start_kills_the_child_when_the_block_exits() -> None:
    with proc.start(["sleep", "300"], timeout=60) as running:
        pid = running.pid
        assert psutil.pid_exists(pid)
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


def test_start_wait_past_deadline_raises_timeout() -> None:
    with proc.start(["sleep", "300"], timeout=0.5) as running:
        with pytest.raises(CommandTimeout):
            running.wait()
        assert running.poll() is not None



def test_on_line_gets_each_line_while_the_command_still_runs(tmp_path: Path) -> None:
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    seen: list[str] = []

    def on_line(line: str) -> None:
        seen.append(line)
        if line == "first":  # the command waits for this: only a live reader gets here
            with open(fifo, "w") as go:
                go.write("x\n")

    result = proc.run(["sh", "-c", f"echo first; echo oops >&2; read x < {fifo}; echo second"],
                      timeout=30, on_line=on_line)
    assert seen == ["first", "oops", "second"]
    assert result.ok and result.stdout == "first\noops\nsecond\n" and result.stderr == ""


def test_on_line_keeps_the_deadline_and_the_failure_sentence(tmp_path: Path) -> None:
    fifo = tmp_path / "never"
    os.mkfifo(fifo)
    with pytest.raises(CommandTimeout) as timed_out:
        proc.run(["sh", "-c", f"echo started; read x < {fifo}"], timeout=0.3,
                 on_line=lambda _line: None)
    assert "timed out after 0.3 s" in str(timed_out.value) and "started" in str(timed_out.value)
    with pytest.raises(CommandFailed) as failed:
        proc.run(["sh", "-c", "echo 'npm error missing script' >&2; exit 1"], timeout=10,
                 on_line=lambda _line: None)
    assert "npm error missing script" in str(failed.value)
    with pytest.raises(ValueError):
        proc.run(["cat"], timeout=5, input="x", on_line=lambda _line: None)
