from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from vmkeeper import proc
from vmkeeper.adapters import host_commands


class _NodeSays:
    def __init__(self, stdout: str) -> None:
        self.stdout = stdout
        self.calls: list[tuple[str, ...]] = []

    def __call__(self, argv: proc.Argv, *, timeout: float, cwd: str | Path | None = None,
                 env: Mapping[str, str] | None = None, check: bool = True) -> proc.Result:
        self.calls.append(tuple(str(a) for a in argv))
        return proc.Result(tuple(str(a) for a in argv), 0, self.stdout, "", 0.01)


def test_node_version_is_the_first_line_node_prints() -> None:
    runner = _NodeSays("v20.11.1\n")
    assert host_commands.node_version(timeout=3, runner=runner) == "v20.11.1"
    assert runner.calls == [("node", "-v")]


@pytest.mark.parametrize(("version", "major"), [
    ("v20.11.1", 20), ("18.19.0", 18), ("v22.0.0-nightly", 22), ("", None), (None, None),
    ("node: not found", None),
])
def test_node_major_reads_the_leading_number(version: str | None, major: int | None) -> None:
    assert host_commands.node_major(version) == major
