"""`media reverse` refuses a DST it must not write, before any FFmpeg starts (fast: no FFmpeg)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

from tests.conftest import CliRun


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_reversing_a_file_onto_itself_is_refused_and_the_source_kept(
        tmp_path: Path, cli: Callable[..., CliRun]) -> None:
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"not really a video, but it must survive")
    before = _digest(source)
    for destination in (source, tmp_path / "." / "clip.mp4"):
        run = cli("media", "reverse", str(source), str(destination))
        assert run.code == 2, run.stderr
        assert "is the source itself" in run.stderr and "Traceback" not in run.stderr
    link = tmp_path / "link.mp4"
    link.symlink_to(source)
    assert cli("media", "reverse", str(source), str(link)).code == 2
    hard = tmp_path / "hard.mp4"
    hard.hardlink_to(source)
    assert cli("media", "reverse", str(source), str(hard)).code == 2
    assert _digest(source) == before


def test_a_missing_output_folder_is_an_error_not_created(
        tmp_path: Path, cli: Callable[..., CliRun]) -> None:
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"video")
    missing = tmp_path / "typo" / "deeper"
    run = cli("media", "reverse", str(source), str(missing / "out.mp4"))
    assert run.code == 2
    assert f"The output folder {missing} does not exist" in run.stderr
    assert not (tmp_path / "typo").exists()


def test_a_folder_as_destination_is_an_error(tmp_path: Path,
                                             cli: Callable[..., CliRun]) -> None:
    source = tmp_path / "clip.mp4"
    source.write_bytes(b"video")
    (tmp_path / "out.mp4").mkdir()
    run = cli("media", "reverse", str(source), str(tmp_path / "out.mp4"))
    assert run.code == 2 and "is a folder" in run.stderr
