from __future__ import annotations

import json
from pathlib import Path

from vmkeeper.agent import audit


def _three(tmp_path: Path) -> list[str]:
    for n in range(3):
        audit.append(tmp_path, who="ci", request_id=f"r{n}", operation="deploy",
                     before="a", after="b", result="ok")
    return (tmp_path / audit.AUDIT_FILE).read_text().splitlines()


def _write(tmp_path: Path, lines: list[str]) -> None:
    (tmp_path / audit.AUDIT_FILE).write_text("".join(line + "\n" for line in lines))


def test_an_intact_chain_verifies(tmp_path: Path) -> None:
    _three(tmp_path)
    verdict = audit.verify(tmp_path)
    assert verdict.ok and verdict.records == 3


def test_an_edited_line_is_named(tmp_path: Path) -> None:
    lines = _three(tmp_path)
    record = json.loads(lines[1])
    record["who"] = "mallory"
    lines[1] = json.dumps(record, sort_keys=True, separators=(",", ":"))
    _write(tmp_path, lines)
    verdict = audit.verify(tmp_path)
    assert not verdict.ok and verdict.bad_line == 2 and "edited" in (verdict.reason or "")


def test_a_removed_line_is_named(tmp_path: Path) -> None:
    lines = _three(tmp_path)
    _write(tmp_path, [lines[0], lines[2]])
    verdict = audit.verify(tmp_path)
    assert not verdict.ok and verdict.bad_line == 2


def test_reordered_lines_are_named(tmp_path: Path) -> None:
    lines = _three(tmp_path)
    _write(tmp_path, [lines[0], lines[2], lines[1]])
    verdict = audit.verify(tmp_path)
    assert not verdict.ok and verdict.bad_line == 2


def test_a_cut_off_last_line_is_caught_by_the_head(tmp_path: Path) -> None:
    lines = _three(tmp_path)
    _write(tmp_path, lines[:2])
    verdict = audit.verify(tmp_path)
    assert not verdict.ok and "removed from the end" in (verdict.reason or "")


def test_an_empty_log_verifies(tmp_path: Path) -> None:
    assert audit.verify(tmp_path).ok
