"""`vmkeeper agent install-unit` writes the unit shipped in the package (vmkeeper/units/), with
this machine's vmkeeper as the program; systemd's own checker accepts it."""

from __future__ import annotations

import configparser
import json
import os
import shutil
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path

from tests.conftest import CliRun
from vmkeeper import proc
from vmkeeper.cli.agent import UNIT_FILE


def _unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are cased
    parser.read_string(path.read_text())
    return parser


def test_install_unit_writes_the_shipped_template_with_this_machine_s_program(
        tmp_path: Path, cli: Callable[..., CliRun]) -> None:
    target = tmp_path / UNIT_FILE
    run = cli("agent", "install-unit", "--path", str(target), "--json")
    assert run.code == 0, run.stderr
    assert json.loads(run.stdout) == {"unit": str(target)}
    assert oct(target.stat().st_mode & 0o777) == "0o644"
    template = files("vmkeeper").joinpath("units", UNIT_FILE).read_text()
    unit = _unit(target)
    program, *args = unit["Service"]["ExecStart"].split()
    assert args == ["agent", "serve"] and os.access(program, os.X_OK)
    assert target.read_text() == template.replace("/usr/local/bin/vmkeeper", program)
    service = unit["Service"]
    assert service["Type"] == "simple" and service["Restart"] == "on-failure"
    assert service["User"] == "ubuntu" and service["MemoryMax"] == "2G"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    analyze = shutil.which("systemd-analyze")
    if analyze:  # the Debian image has it; systemd's own parser then checks every key
        checked = proc.run([analyze, "verify", str(target)], timeout=30, check=False)
        assert checked.returncode == 0 and not checked.stderr.strip(), checked.stderr
