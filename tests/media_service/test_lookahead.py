"""The executor's lookahead: the next job's checks and probe made while the current one runs."""

from __future__ import annotations

import os
from pathlib import Path

from vmkeeper.media.job import ReverseResult
from vmkeeper.media.runner import Lookahead
from vmkeeper.settings import MediaSettings


def _lookahead(source: Path, made: list[Path]) -> Lookahead:
    def prepare(_media: MediaSettings, path: Path, _destination: Path) -> ReverseResult:
        made.append(path)
        return ReverseResult(False, None, None, 0.0, "refused ahead", rejected=True)

    ahead = Lookahead(MediaSettings(), prepare)
    ahead.upcoming = lambda: ("job-2", source, source.parent / "out" / "x.mp4")
    return ahead


def _prepared_ahead(tmp_path: Path) -> tuple[Path, list[Path], Lookahead]:
    source = tmp_path / "next.mp4"
    source.write_bytes(b"video")
    made: list[Path] = []
    ahead = _lookahead(source, made)
    ahead.start()
    ahead.join()
    return source, made, ahead


def test_the_next_job_is_prepared_once_and_used_for_that_job_only(tmp_path: Path) -> None:
    source, made, ahead = _prepared_ahead(tmp_path)
    ahead.start()  # the same next job again: not probed twice
    ahead.join()
    assert made == [source]
    assert ahead.take("job-1", source) is None
    taken = ahead.take("job-2", source)
    assert taken is not None and taken.error == "refused ahead"
    assert ahead.take("job-2", source) is None  # used once


def test_a_source_changed_since_it_was_probed_is_probed_again(tmp_path: Path) -> None:
    source, _made, ahead = _prepared_ahead(tmp_path)
    source.write_bytes(b"another video, longer")
    os.utime(source, ns=(1, 1))
    assert ahead.take("job-2", source) is None


def test_without_a_queue_nothing_is_prepared(tmp_path: Path) -> None:
    made: list[Path] = []
    ahead = Lookahead(MediaSettings(), lambda *_args: made.append(tmp_path))  # type: ignore[arg-type,func-returns-value]
    ahead.start()
    ahead.join()
    assert made == []
