"""The command registry: `--help` lists every command without importing it; each runs when asked."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable

import pytest

from tests.conftest import CliRun
from vmkeeper import proc
from vmkeeper.cli.registry import ENTRIES, Entry

# What `vmkeeper --help` must not pay for: each costs tens of milliseconds to import (Rich it
# needs: typer draws the help with it).
HEAVY = ("opentelemetry", "pydantic", "structlog", "httpx", "fastapi", "av", "detect_secrets",
         "psutil", "vmkeeper.settings", "vmkeeper.proc")


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda e: e.name)
def test_each_summary_is_the_commands_own_first_help_line(entry: Entry) -> None:
    command = entry.load()
    own = inspect.cleandoc(command.help or "").split("\n\n")[0].replace("\n", " ")
    assert entry.summary == own, f"update the registry's summary of {entry.name!r}"
    assert command.name == entry.name


def test_help_lists_every_command_and_imports_none_of_them() -> None:
    probe = (
        "import sys\n"
        "from vmkeeper.cli.main import main\n"
        "code = main(['--help'])\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('vmkeeper.cli.') and m not in "
        "('vmkeeper.cli.main', 'vmkeeper.cli.registry', 'vmkeeper.cli.common'))\n"
        "print('RESULT', code, heavy, loaded, file=sys.stderr)\n"
    )
    done = proc.run([sys.executable, "-c", probe], timeout=60)
    assert "RESULT 0 [] []" in done.stderr
    for entry in ENTRIES:
        assert entry.name in done.stdout


def test_a_command_runs_after_being_loaded_on_demand(cli: Callable[..., CliRun]) -> None:
    run = cli("config", "show", "--json")
    assert run.code == 0 and '"settings"' in run.stdout


def test_an_unknown_command_is_a_usage_error_that_suggests_a_close_one(
    cli: Callable[..., CliRun],
) -> None:
    run = cli("healht")
    assert run.code == 2
    assert "No such command" in run.stderr and "health" in run.stderr



def test_health_and_config_as_json_load_no_rich_structlog_or_httpx() -> None:
    # `vmkeeper health --json` runs every minute under monitoring: it pays for its checks only.
    probe = (
        "import sys, io, contextlib\n"
        "from vmkeeper.cli.main import main\n"
        "import vmkeeper.cli.health, vmkeeper.health.service\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = main(['config', 'show', '--json'])\n"
        "heavy = sorted(m for m in ('rich', 'structlog', 'httpx', 'fastapi', 'av')"
        " if m in sys.modules)\n"
        "print('RESULT', code, heavy, file=sys.stderr)\n"
    )
    done = proc.run([sys.executable, "-c", probe], timeout=60)
    assert "RESULT 0 []" in done.stderr
