"""The CLI's warm worker on its own: probe answers, hand-over, and when it cannot start."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support.processes import Spawned
from vmkeeper.errors import CommandTimeout
from vmkeeper.fileid import file_identity
from vmkeeper.media import warm, worker
from vmkeeper.media.child import spawn


def test_no_temp_file_means_no_warm_worker(monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path, spawned: Spawned) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path / "missing"))  # no file for its stderr
    with warm.warm_worker(tmp_path / "a.mp4", tmp_path / "b.mp4") as worker:
        assert worker is None  # the reversal then starts its own worker, as before
    assert spawned.left() == []


def test_the_entry_starts_it_and_the_command_takes_it(tmp_path: Path, spawned: Spawned) -> None:
    src, dst = tmp_path / "a.mp4", tmp_path / "b.mp4"
    warm.start_early(["--config", "x.toml", "media", "reverse", f"{tmp_path}/./a.mp4", "--json",
                      str(dst)])
    early = spawned.left()
    assert len(early) == 1  # started before the CLI is imported
    with warm.warm_worker(src, dst) as worker:
        assert worker is not None and worker.child.pid == early[0].pid  # the same process
        warm.discard_early()  # the entry's finally: nothing left to stop, the command has it
        assert worker.child.poll() is None
    assert spawned.left() == []


def test_an_early_worker_for_other_names_is_stopped_not_used(tmp_path: Path,
                                                             spawned: Spawned) -> None:
    warm.start_early(["media", "reverse", str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")])
    (early,) = spawned.left()
    with warm.warm_worker(tmp_path / "other.mp4", tmp_path / "b.mp4") as worker:
        assert worker is not None and worker.child.pid != early.pid
        assert not early.is_running() or early.status() == "zombie"
    assert spawned.left() == []
    warm.start_early(["media", "reverse", str(tmp_path / "a.mp4"), str(tmp_path / "b.mp4")])
    assert len(spawned.left()) == 1
    warm.discard_early()  # a command that never took it (an error before `media reverse` ran)
    assert spawned.left() == []


@pytest.mark.parametrize("argv", [["media", "reverse", "a.mp4"], ["media", "reverse", "--help"],
                                  ["media", "probe", "a.mp4"], ["media", "reverse", "a", "b", "c"],
                                  ["deploy"], []])
def test_no_early_worker_unless_it_is_media_reverse_src_dst(argv: list[str],
                                                            spawned: Spawned) -> None:
    warm.start_early(argv)
    assert spawned.left() == []
    warm.discard_early()


def test_it_answers_a_probe_then_is_handed_over_or_stopped(tmp_path: Path,
                                                          spawned: Spawned) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"not a video, " * 100)
    with warm.warm_worker(garbage, tmp_path / "out.mp4") as worker:
        assert worker is not None
        answer = worker.probe(garbage, timeout_s=30)
        assert answer.returncode == 1 and '"type": "error"' in answer.stdout
        kept = worker.hand_over()
        assert kept is not None and kept.pid == worker.child.pid
        for fd in (kept.stdin_fd, kept.stdout_fd):
            assert os.get_inheritable(fd)  # they survive the exec into the supervisor
            os.close(fd)
    assert spawned.left() == []  # leaving the block without the exec stops it


def test_a_probe_past_its_timeout_kills_the_worker(tmp_path: Path, spawned: Spawned) -> None:
    with warm.warm_worker(tmp_path / "a.mp4", tmp_path / "b.mp4") as worker:
        assert worker is not None
        with pytest.raises(CommandTimeout):
            worker.probe(tmp_path / "a.mp4", timeout_s=0.001)
        assert worker.child.poll() is not None
        assert worker.hand_over() is None
    assert spawned.left() == []


def test_a_small_source_is_probed_ahead_and_that_answer_serves_only_the_same_unchanged_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "a.mp4"
    source.write_bytes(b"not a video, " * 100)
    ahead = worker._probe_ahead(str(source))
    assert ahead is not None
    identity, line = ahead.identity, ahead.line
    assert not ahead.media and ahead.opened is None  # not media: nothing opened for a reversal
    message = json.loads(line)
    assert message.pop("probe_s") > 0  # how long it took, for FFPROBE_TIMEOUT_MS
    assert message == worker._probed(str(source))[0]  # what asking would have answered
    kept = worker.Ahead(identity, '{"kept": true}', True)  # tells it from a new probe
    worker._answer(str(source), kept)
    worker._answer(str(source), kept)  # asked again: the same file, the same answer
    assert capsys.readouterr().out == '{"kept": true}\n' * 2
    with source.open("ab") as more:  # changed since: probed again
        more.write(b"more")
    worker._answer(str(source), kept)
    assert '"type": "error"' in capsys.readouterr().out
    other = tmp_path / "b.mp4"
    other.write_bytes(b"not a video, " * 100)
    identity = file_identity(source)
    assert identity is not None
    kept = worker.Ahead(identity, '{"kept": true}', True)
    other.replace(source)  # another file under the same name, same size
    worker._answer(str(source), kept)
    assert '"type": "error"' in capsys.readouterr().out


def test_what_is_not_a_small_non_empty_regular_file_is_not_probed_ahead(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = tmp_path / "fifo.mp4"
    os.mkfifo(fifo)  # opening it would block the worker until the CLI killed it
    empty = tmp_path / "empty.mp4"
    empty.touch()
    big = tmp_path / "big.mp4"
    big.write_bytes(b"x" * 100)
    for path in (fifo, empty, tmp_path, tmp_path / "missing.mp4"):
        assert worker._probe_ahead(str(path)) is None
    assert worker._probe_ahead(str(big)) is not None
    monkeypatch.setattr(worker, "_AHEAD_MAX_BYTES", 99)  # over the bound: the CLI checks first
    assert worker._probe_ahead(str(big)) is None


@pytest.mark.parametrize(("spent", "timed_out"), [(5, True), (0.5, False)])
def test_an_answer_made_ahead_counts_the_time_its_probe_took(
        tmp_path: Path, spawned: Spawned, spent: float, timed_out: bool) -> None:
    # A stand-in worker that had probed ahead: it answers at once, saying how long that took.
    answer = json.dumps({"format": {}, "streams": [], "probe_s": spent})
    script = f"import sys; sys.stdin.readline(); print({answer!r}, flush=True); sys.stdin.read()"
    argv = [sys.executable, "-c", script]
    with tempfile.TemporaryFile(dir=tmp_path) as stderr:
        worker = warm.WarmWorker(spawn(argv, dict(os.environ), stderr_fd=stderr.fileno(),
                                       stdin_pipe=True), stderr, argv)
        try:
            if timed_out:  # FFPROBE_TIMEOUT_MS bounds the probe, however early it ran
                with pytest.raises(CommandTimeout):
                    worker.probe(tmp_path / "a.mp4", timeout_s=1)
                assert worker.child.poll() is not None  # killed
            else:
                assert worker.probe(tmp_path / "a.mp4", timeout_s=1).returncode == 0
        finally:
            worker.stop()
    assert spawned.left() == []
