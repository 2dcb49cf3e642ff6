from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from vmkeeper.atomic import atomic_file, write_atomic


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_write_replaces_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    target.write_text("old")
    write_atomic(target, '{"new": "é"}')
    assert target.read_text(encoding="utf-8") == '{"new": "é"}'
    assert os.listdir(tmp_path) == ["state.json"]


def test_default_mode_is_private_whatever_the_umask(tmp_path: Path) -> None:
    previous = os.umask(0)
    try:
        write_atomic(tmp_path / "secret", b"x")
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "secret") == 0o600


def test_mode_argument_sets_the_final_mode(tmp_path: Path) -> None:
    write_atomic(tmp_path / "metrics.prom", "up 1\n", mode=0o644)
    assert _mode(tmp_path / "metrics.prom") == 0o644


def test_a_failure_while_writing_leaves_the_old_content_and_no_temporary(
        tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    target.write_text("old content")
    with pytest.raises(RuntimeError, match="disk gone"), atomic_file(target) as handle:
        handle.write(b"half of the new")
        raise RuntimeError("disk gone")
    assert target.read_text() == "old content"
    assert os.listdir(tmp_path) == ["record.json"]


def test_a_missing_folder_raises_the_filesystem_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        write_atomic(tmp_path / "absent" / "file", "x")
