"""The CLI's warm worker on its own: probe answers, hand-over, and when it cannot start."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from tests.support.processes import Spawned
from vmkeeper.errors import CommandTimeout
from vmkeeper.media import warm


def test_no_temp_file_means_no_warm_worker(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    def refuse() -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with warm.warm_worker(tmp_path / "a.mp4", tmp_path / "b.mp4") as worker:
        assert worker is None  # the reversal then starts its own worker, as before


def test_it_answers_a_probe_then_is_handed_over_or_stopped(tmp_path: Path,
                                                          spawned: Spawned) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video, " * 100)
    with warm.warm_worker(garbage, tmp_path / "out.mp4") as worker:
        assert worker is not None
        answer = worker.probe(garbage, timeout_s=30)
        assert answer.returncode == 1 and '"type": "error"' in answer.stdout
        kept = worker.hand_over()
        assert kept is not None and kept.pid == worker.running.pid
        for fd in (kept.stdin_fd, kept.stdout_fd):
            assert os.get_inheritable(fd)  # they survive the exec into the supervisor
            os.close(fd)
    assert spawned.left() == []  # leaving the block without the exec stops it


def test_a_probe_past_its_timeout_kills_the_worker(tmp_path: Path, spawned: Spawned) -> None:
    with warm.warm_worker(tmp_path / "a.mp4", tmp_path / "b.mp4") as worker:
        assert worker is not None
        with pytest.raises(CommandTimeout):
            worker.probe(tmp_path / "a.mp4", timeout_s=0.001)
        assert worker.running.poll() is not None
        assert worker.hand_over() is None
    assert spawned.left() == []
