"""media reverse against real FFmpeg: frame order, samples, durations, guardrails."""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

import av
import pytest

from tests.media.conftest import Clips
from tests.media.helpers import (
    LOSSLESS,
    audio_offset_and_span,
    frame_md5s,
    reversed_samples,
    run,
    samples,
    video_pts_seconds,
    video_times,
)
from tests.support.processes import Spawned
from vmkeeper.settings import MediaSettings

pytestmark = pytest.mark.slow

# An odd size comes out cropped to even (the right column and bottom row), never padded.
EVEN = "crop=trunc(iw/2)*2:trunc(ih/2)*2:0:0,format=yuv420p"


@pytest.mark.parametrize("name", ["basic", "qvga", "long_gop", "short_tail", "rotated", "odd",
                                  "odd_vp9", "open_gop", "offset", "tiny", "silent", "vfr"])
def test_reverse_output_frames_are_input_frames_backwards(clips: Clips, tmp_path: Path,
                                                          name: str) -> None:
    src = getattr(clips, name)
    result = run(LOSSLESS, src, tmp_path / "out.mov")
    assert result.ok, result.error
    expected = frame_md5s(src, EVEN if name.startswith("odd") else None)[::-1]
    assert frame_md5s(tmp_path / "out.mov") == expected
    assert result.stats is not None and result.stats.output_frames == len(expected)


@pytest.mark.parametrize("name", ["odd", "odd_vp9"])
def test_an_odd_size_comes_out_cropped_to_even_without_a_border(clips: Clips, tmp_path: Path,
                                                                name: str) -> None:
    result = run(LOSSLESS, getattr(clips, name), tmp_path / "out.mov")
    assert result.ok, result.error
    with av.open(str(tmp_path / "out.mov")) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (160, 120)  # from 161x121
    plane = frame.planes[0]
    luma, stride = bytes(plane), plane.line_size
    last_column = {luma[row * stride + frame.width - 1] for row in range(frame.height)}
    last_row = set(luma[(frame.height - 1) * stride:][: frame.width])
    # testsrc2's picture reaches the edges: a padded (black) column or row would be one value.
    assert len(last_column) > 1 and len(last_row) > 1


def test_a_gop_over_the_budget_is_spooled_whole_and_decoded_once(clips: Clips,
                                                                 tmp_path: Path) -> None:
    # 1 MiB budget, 120-frame GOP: the frames go to the spool (most of them pushed out of the
    # page cache), never re-decoded from the keyframe per part.
    result = run(LOSSLESS, clips.long_gop, tmp_path / "out.mov")
    assert result.ok, result.error
    assert result.stats is not None and result.stats.pieces == 1
    assert result.stats.frames_decoded == result.stats.frames
    assert frame_md5s(tmp_path / "out.mov") == frame_md5s(clips.long_gop)[::-1]


def test_a_spool_that_would_not_fit_is_refused_before_decoding(
        clips: Clips, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from vmkeeper.media import spool as spool_module
    from vmkeeper.media.frames import ReversalFailed

    stats = os.statvfs(tmp_path)
    full = type("Full", (), {"f_bavail": 1, "f_frsize": stats.f_frsize})()
    spool_module.check_spool_space(str(tmp_path), 2**20)  # a real disk: fits
    monkeypatch.setattr(spool_module.os, "statvfs", lambda _path: full)
    with pytest.raises(ReversalFailed, match=r"spool needs 0 MiB .* only 0 MiB"):
        spool_module.check_spool_space(str(tmp_path), 1)


def test_filesystem_type_reads_the_mount_table() -> None:
    from vmkeeper.media.spool import filesystem_type

    assert filesystem_type("/proc/self") == "proc"
    assert filesystem_type("/proc") == "proc"


@pytest.mark.parametrize(("temp_fs", "spooled_in_temp"),
                         [("tmpfs", False), ("ramfs", False), ("ext4", True), ("xfs", True)])
def test_the_spool_leaves_a_ram_filesystem_for_the_output_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, temp_fs: str,
        spooled_in_temp: bool) -> None:
    from vmkeeper.media import spool as spool_module

    temp_dir, output = str(tmp_path / "tmp"), str(tmp_path / "out" / "reversed.mp4")
    monkeypatch.setattr(spool_module, "filesystem_type",
                        lambda path: temp_fs if path == temp_dir else "ext4")
    expected = temp_dir if spooled_in_temp else str(tmp_path / "out")
    assert spool_module.spool_directory(temp_dir, output) == expected


def test_reverse_one_piece_when_the_budget_holds_the_clip(clips: Clips, tmp_path: Path) -> None:
    settings = LOSSLESS.model_copy(update={"memory_budget_mb": 64})
    result = run(settings, clips.basic, tmp_path / "out.mov")
    assert result.stats is not None and result.stats.pieces == 1
    assert result.stats.frames_decoded == result.stats.frames
    assert frame_md5s(tmp_path / "out.mov") == frame_md5s(clips.basic)[::-1]


@pytest.mark.parametrize("name", ["basic", "long_gop", "short_tail", "offset", "tiny"])
def test_reverse_audio_is_input_audio_backwards_sample_exact(clips: Clips, tmp_path: Path,
                                                             name: str) -> None:
    src = getattr(clips, name)
    assert run(LOSSLESS, src, tmp_path / "out.mov").ok
    data, channels = samples(src)
    got, got_channels = samples(tmp_path / "out.mov")
    assert channels == got_channels == 2
    # The reversed sound covers the picture's span: with a start offset the AAC priming sits
    # before the first frame (1024 samples here) and is not part of it.
    skip, span = audio_offset_and_span(src)
    assert len(got) == span * channels
    assert got == reversed_samples(data[skip * channels:(skip + span) * channels], channels)


def test_reverse_audio_shorter_than_video_starts_with_silence(clips: Clips,
                                                              tmp_path: Path) -> None:
    assert run(LOSSLESS, clips.short_audio, tmp_path / "out.mov").ok
    data, channels = samples(clips.short_audio)  # 2 s of sound under 3 s of picture
    got, _ = samples(tmp_path / "out.mov")
    silence = 48000 * channels
    assert len(got) == 3 * 48000 * channels
    assert not any(got[:silence])
    assert got[silence:] == reversed_samples(data, channels)


def test_reverse_audio_longer_than_video_is_cut_to_the_video(clips: Clips,
                                                             tmp_path: Path) -> None:
    assert run(LOSSLESS, clips.long_audio, tmp_path / "out.mov").ok
    data, channels = samples(clips.long_audio)  # 3 s of sound over 2 s of picture
    got, _ = samples(tmp_path / "out.mov")
    span = 2 * 48000 * channels
    assert got == reversed_samples(data[:span], channels)


def test_reverse_vfr_is_a_true_time_mirror(clips: Clips, tmp_path: Path) -> None:
    result = run(LOSSLESS, clips.vfr, tmp_path / "out.mov")
    assert result.ok and result.stats is not None
    # Each frame decoded once, plus at most the next GOP's first frame per piece: a seek that
    # lands a GOP early is not decoded from there.
    assert result.stats.frames_decoded <= result.stats.frames + result.stats.pieces
    forward, end = video_times(clips.vfr)
    backward = video_pts_seconds(tmp_path / "out.mov")
    expected = sorted(end - t for t in [*forward[1:], end])
    assert backward == pytest.approx([t - expected[0] for t in expected], abs=1e-3)
    durations = [b - a for a, b in itertools.pairwise(forward)]
    assert len({round(d, 4) for d in durations}) > 1  # the input really is VFR
    # Output frame k is input frame n-1-k and lasts as long: durations mirrored.
    mirrored = ([*durations, end - forward[-1]])[::-1][:-1]
    assert [b - a for a, b in itertools.pairwise(backward)] == pytest.approx(mirrored, abs=1e-4)


def test_reverse_default_output_is_h264_aac_mp4_faststart(clips: Clips, tmp_path: Path) -> None:
    dst = tmp_path / "out.mp4"
    result = run(MediaSettings(), clips.basic, dst)
    assert result.ok and result.stats is not None
    head = dst.read_bytes()
    assert 0 <= head.find(b"moov") < head.find(b"mdat")  # +faststart: index first
    assert result.stats.output_frames == 90
    assert result.stats.output_video_duration_s == pytest.approx(3.0, abs=1 / 30)
    assert abs(result.stats.output_audio_samples - 3 * 48000) <= 1024
    data, channels = samples(dst)
    assert len(data) == 3 * 48000 * channels  # FFmpeg's own decode: exact length
    assert result.input is not None and result.input["video"] is not None
    assert result.output_size_bytes == dst.stat().st_size


def test_reverse_timeout_kills_the_worker_and_leaves_nothing(clips: Clips, tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             spawned: Spawned) -> None:
    private = tmp_path / "tmp"
    private.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(private))
    settings = MediaSettings(reverse_timeout_ms=1500)  # past the probe; the reversal takes ~5 s
    dst = tmp_path / "out" / "reversed.mp4"
    dst.parent.mkdir()  # `media reverse` never creates DST's folder
    result = run(settings, clips.slow, dst, deadline=None)
    assert not result.ok and not result.rejected
    assert result.error is not None and "FFMPEG_REVERSE_TIMEOUT_MS" in result.error
    assert spawned.left() == []
    assert not dst.exists()
    assert os.listdir(dst.parent) == []  # no partial file beside DST
    assert os.listdir(private) == []  # the private temp dir is gone


def test_reverse_failure_leaves_no_destination(clips: Clips, tmp_path: Path,
                                               spawned: Spawned) -> None:
    settings = MediaSettings(video_codec="no_such_encoder")
    dst = tmp_path / "out.mp4"
    result = run(settings, clips.tiny, dst)
    assert not result.ok and result.error and "failed" in result.error
    assert list(tmp_path.iterdir()) == []
    assert spawned.left() == []


def test_the_spool_round_trips_padded_lines_of_a_tall_rotated_frame(tmp_path: Path) -> None:
    # transpose gives 1080-wide lines padded to 1088: 1920 + 2 x 960 rows, more than IOV_MAX
    # if written one vector entry per row.
    import av
    import av.filter

    from vmkeeper.media.spool import CacheShare, Spool

    graph = av.filter.Graph()
    source = graph.add_buffer(width=1920, height=1080, format="yuv420p", time_base=1 / 30)
    turn, sink = graph.add("transpose", "clock"), graph.add("buffersink")
    source.link_to(turn)
    turn.link_to(sink)
    graph.configure()
    frame = av.VideoFrame(1920, 1080, "yuv420p")
    for number, plane in enumerate(frame.planes):
        pattern = bytes((7 * number + k) % 251 for k in range(251))
        plane.update((pattern * (plane.buffer_size // 251 + 1))[: plane.buffer_size])
    graph.push(frame)
    turned = graph.pull()
    assert turned.planes[0].line_size != turned.width  # the padded case
    spool = Spool(str(tmp_path), turned.width, turned.height, CacheShare(0))
    try:
        spool.write(turned)
        back = spool.pop(spool.new_frame())
    finally:
        spool.close()
    for ours, theirs, (width, rows) in zip(turned.planes, back.planes, spool.planes, strict=False):
        a, b = memoryview(ours), memoryview(theirs)
        for row in range(rows):
            assert a[row * ours.line_size:][:width] == b[row * theirs.line_size:][:width]
    assert os.listdir(tmp_path) == []  # O_TMPFILE: the spool never had a name


def _count_opens(monkeypatch: pytest.MonkeyPatch, source: object) -> list[str]:
    """Every ``av.open`` of ``source`` from now on, in a list that grows as they happen."""
    opened: list[str] = []
    real_open = av.open

    def counting_open(file: object, *args: object, **kwargs: object) -> object:
        if str(file) == str(source):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(av, "open", counting_open)
    return opened


@pytest.mark.parametrize(("name", "budget_mb", "opens"), [("tiny", 96, 2), ("basic", 1, 3)])
def test_the_index_and_the_first_piece_share_one_open_of_the_source(
        clips: Clips, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str,
        budget_mb: int, opens: int) -> None:
    # Each open costs a decode (FFmpeg finds the streams' parameters: ~15-30 ms at 1080p), on
    # the path before the first frame can be encoded: the index, the converter's frame and
    # the first piece share one, the sound has its own; the other pieces one more, opened
    # while x264 encodes the first.
    from vmkeeper.media.job import ReverseJob
    from vmkeeper.media.reverse import reverse_file

    source = str(getattr(clips, name))
    opened = _count_opens(monkeypatch, source)
    job = ReverseJob(source=source, output=str(tmp_path / "out.mp4"), container="mp4",
                     temp_dir=str(tmp_path), frame_budget_bytes=budget_mb * 2**20)
    stats = reverse_file(job, lambda _done, _total: None)
    assert (stats.pieces == 1) == (opens == 2), stats
    assert len(opened) == opens
    assert stats.output_frames == stats.frames


def test_a_source_opened_before_its_job_came_is_reversed_from_those_opens_unless_it_changed(
        clips: Clips, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    # `worker serve SRC DST` opens a small SRC while the CLI prepares the job (~27 ms at 1080p
    # off the path to the first frame); the job uses those opens only for that file unchanged.
    import json
    import shutil

    from vmkeeper.media import worker
    from vmkeeper.media.job import ReverseJob

    source = tmp_path / "src.mp4"
    shutil.copyfile(clips.tiny, source)
    opened = _count_opens(monkeypatch, source)

    def reverse(ahead: worker.Ahead | None, name: str) -> dict[str, object]:
        job = ReverseJob(source=str(source), output=str(tmp_path / name), container="mp4",
                         temp_dir=str(tmp_path), frame_budget_bytes=96 * 2**20)
        assert worker._reverse(job.to_json(), ahead) == 0
        result = json.loads(capsys.readouterr().out.splitlines()[-1])
        assert result["type"] == "result" and result["output_frames"] == result["frames"]
        return dict(result)

    ahead = worker._open_ahead(str(source), worker._probe_ahead(str(source)))
    assert ahead is not None and ahead.media and ahead.opened is not None
    assert len(opened) == 3  # the probe, then video and sound, before the job came
    opened.clear()
    reverse(ahead, "a.mp4")
    assert opened == []  # the index, the fill and the sound read the containers opened ahead
    ahead = worker._open_ahead(str(source), worker._probe_ahead(str(source)))
    assert ahead is not None and ahead.opened is not None
    opened.clear()
    os.utime(source, ns=(1, 1))  # changed since it was opened: opened again
    reverse(ahead, "b.mp4")
    assert len(opened) == 2


def test_frames_unlike_what_the_stream_declares_are_refused_not_reversed(
        clips: Clips, tmp_path: Path) -> None:
    # The converter is made for the shape the stream declares and the probe's rotation (no
    # frame decoded for it); a piece whose first frame disagrees is refused in one sentence.
    from vmkeeper.media.frames import ReversalFailed
    from vmkeeper.media.job import ReverseJob
    from vmkeeper.media.reverse import reverse_file

    job = ReverseJob(source=str(clips.tiny), output=str(tmp_path / "out.mp4"), container="mp4",
                     temp_dir=str(tmp_path), frame_budget_bytes=96 * 2**20, rotation=90)
    with pytest.raises(ReversalFailed, match=r"frame 0 is 160x120 yuv420p, rotated 0°, not "
                                             r"160x120 yuv420p, rotated 90°"):
        reverse_file(job, lambda _done, _total: None)
