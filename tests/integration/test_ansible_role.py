"""The shipped role (ansible/roles/vmkeeper through ansible/site.yml), run by a real
`ansible-playbook` over real SSH to the loopback sshd.

Real: the playbook, the role's tasks, its templates rendered on the host, the settings file
read back by the installed vmkeeper. Into a temporary prefix and without privilege: the program
link, settings and unit files go under it, and no unit is started (systemd is not PID 1 here:
`vmkeeper_manage_services: false`). The venv is the one this test run installed, so the real
apply skips pip (`vmkeeper_install_package: false`); check mode runs the pip task too.
"""

from __future__ import annotations

import getpass
import grp
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.integration.sshd import Sshd
from vmkeeper import proc

pytestmark = pytest.mark.slow

ANSIBLE = Path(__file__).resolve().parents[2] / "ansible"


def _vars(prefix: Path) -> dict[str, Any]:
    return {
        "vmkeeper_venv": str(Path(sys.executable).parent.parent),
        "vmkeeper_install_os_packages": False,
        "vmkeeper_become": False,
        "vmkeeper_manage_services": False,
        "vmkeeper_user": getpass.getuser(),
        "vmkeeper_group": grp.getgrgid(os.getgid()).gr_name,
        "vmkeeper_config_owner": getpass.getuser(),
        "vmkeeper_config": str(prefix / "etc" / "vmkeeper" / "vmkeeper.toml"),
        "vmkeeper_bin_link": str(prefix / "bin" / "vmkeeper"),
        "vmkeeper_systemd_dir": str(prefix / "systemd"),
        "vmkeeper_settings": {"public_url": "http://127.0.0.1:8080",
                              "releases": {"keep": 3}, "fleet": {"waves": [1, "50%"]}},
    }


def _playbook(inventory: Path, extra: dict[str, Any], *flags: str) -> tuple[int, str]:
    result = proc.run([str(Path(sys.executable).parent / "ansible-playbook"), "-i",
                       str(inventory), str(ANSIBLE / "site.yml"), "-e", json.dumps(extra),
                       *flags], timeout=300, check=False,
                      env={"ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "False",
                           "ANSIBLE_PIPELINING": "True",
                           "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    return result.returncode, result.stdout + result.stderr


def _changed(output: str) -> int:
    found = re.search(r"host1\s*:\s*ok=\d+\s+changed=(\d+)", output)
    assert found, output[-2000:]
    return int(found.group(1))


def test_the_role_in_check_mode_then_applied_into_a_prefix(sshd: Sshd, tmp_path: Path) -> None:
    prefix = tmp_path / "prefix"
    inventory = sshd.inventory(tmp_path / "inventory.ini", {"host1": tmp_path / "unused.toml"})
    extra = _vars(prefix)

    code, output = _playbook(inventory, {**extra, "vmkeeper_package": "vmkeeper"}, "--check")
    assert code == 0, output[-3000:]
    assert _changed(output) > 0  # it would create the folders, the link, settings, units
    assert not prefix.exists()  # and check mode made none of them

    code, output = _playbook(inventory, {**extra, "vmkeeper_install_package": False})
    assert code == 0, output[-3000:]
    link, config = prefix / "bin" / "vmkeeper", prefix / "etc" / "vmkeeper" / "vmkeeper.toml"
    assert link.resolve() == (Path(sys.executable).parent / "vmkeeper").resolve()
    assert oct(config.stat().st_mode & 0o777) == "0o640"
    shown = json.loads(proc.run([str(link), "--config", str(config), "config", "show",
                                 "--json"], timeout=60).stdout)
    settings = shown.get("settings", shown)
    assert settings["releases"]["keep"] == 3 and settings["fleet"]["waves"] == [1, "50%"]
    assert settings["public_url"] == "http://127.0.0.1:8080"
    for unit in ("vmkeeper-agent", "vmkeeper-watch"):
        text = (prefix / "systemd" / f"{unit}.service").read_text()
        assert f"ExecStart={extra['vmkeeper_venv']}/bin/vmkeeper --config {config} " in text
        assert f"User={getpass.getuser()}" in text

    code, output = _playbook(inventory, {**extra, "vmkeeper_install_package": False})
    assert code == 0 and _changed(output) == 0, output[-3000:]  # a second apply changes nothing
