from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import typer

from tests.conftest import CliRun
from vmkeeper.cli import main as cli_main


def test_unexpected_error_exits_1_and_writes_traceback_to_a_log(
    cli: Callable[..., CliRun], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    boom = typer.Typer()

    @boom.command("explode")
    def explode() -> None:
        raise ZeroDivisionError("division by zero")

    @boom.command("other")
    def other() -> None:
        return None

    cli_main.app.add_typer(boom, name="boom")
    try:
        run = cli("boom", "explode")
    finally:
        cli_main.app.registered_groups.pop()
    assert run.code == 1
    assert "Traceback" not in run.stderr
    logs = list((tmp_path / "vmkeeper").glob("vmkeeper-crash-*.log"))
    assert len(logs) == 1 and str(logs[0]) in run.stderr.replace("\n", "")
    assert "ZeroDivisionError" in logs[0].read_text()


def test_bad_set_flag_is_usage_error(cli: Callable[..., CliRun]) -> None:
    run = cli("--set", "no-equals-sign", "config", "show")
    assert run.code == 2
    assert "KEY=VALUE" in run.stderr


def test_python_dash_m_runs_the_cli() -> None:
    from vmkeeper import proc

    result = proc.run([sys.executable, "-m", "vmkeeper", "config", "show", "--json"], timeout=60,
                      check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.lstrip().startswith("{")
