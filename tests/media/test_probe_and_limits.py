"""media probe and every rejection path, against real files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.media.conftest import FFMPEG, Clips
from tests.media.helpers import run
from tests.support.processes import Spawned
from vmkeeper.cli.main import main
from vmkeeper.errors import MediaRejected
from vmkeeper.media import service
from vmkeeper.media.clips import remux
from vmkeeper.media.probe import probe_media
from vmkeeper.settings import MediaSettings

pytestmark = pytest.mark.slow


def test_probe_reports_streams_and_metadata(clips: Clips) -> None:
    info = probe_media(MediaSettings(), clips.basic)
    assert info.video is not None and info.audio is not None
    assert (info.video.codec, info.video.width, info.video.height) == ("h264", 160, 120)
    assert info.video.fps == 30 and info.video.frame_count == 90
    assert info.video.pixel_format == "yuv420p" and info.video.rotation == 0
    assert (info.audio.codec, info.audio.sample_rate, info.audio.channels) == ("aac", 48000, 2)
    assert info.duration_s == pytest.approx(3.0, abs=0.05)
    assert info.size_bytes == clips.basic.stat().st_size and info.bit_rate


def test_probe_reports_rotation_and_start_time(clips: Clips) -> None:
    assert probe_media(MediaSettings(), clips.rotated).video.rotation == 270  # type: ignore[union-attr]
    assert probe_media(MediaSettings(), clips.offset).start_time_s == pytest.approx(1.48, abs=0.03)


def test_probe_cli_json_has_the_contract_keys(clips: Clips,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["media", "probe", str(clips.silent), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"duration_s", "size_bytes", "format", "video", "audio"} <= set(data)
    assert data["audio"] is None
    assert {"codec", "width", "height", "fps", "rotation"} <= set(data["video"])


@pytest.fixture(scope="module")
def bad_files(clips: Clips, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    empty = d / "empty.mp4"
    empty.write_bytes(b"")
    text = d / "notes.mp4"
    text.write_text("this is not a video\n" * 20)
    whole = clips.basic.read_bytes()
    no_index = d / "no_index.mp4"  # moov at the end, cut off
    no_index.write_bytes(whole[: len(whole) // 2])
    faststart = d / "faststart.mp4"
    remux(FFMPEG, ["-i", str(clips.basic), "-c", "copy", "-movflags", "+faststart",
                   str(faststart)])
    cut = d / "cut_data.mp4"  # moov first, media data cut short
    data = faststart.read_bytes()
    cut.write_bytes(data[: len(data) * 2 // 3])
    return {"empty": empty, "text": text, "no_index": no_index, "cut_data": cut,
            "audio_only": clips.audio_only}


@pytest.mark.parametrize(("name", "words"), [
    ("empty", "empty (0 bytes)"),
    ("text", "not readable media"),
    ("no_index", "not readable media"),
    ("cut_data", "truncated"),
    ("audio_only", "no video stream"),
])
def test_probe_refuses_what_is_not_a_video(bad_files: dict[str, Path], name: str,
                                           words: str) -> None:
    with pytest.raises(MediaRejected) as caught:
        probe_media(MediaSettings(), bad_files[name])
    assert words in str(caught.value) and str(bad_files[name]) in str(caught.value)


def _no_worker(*_args: object, **_kwargs: object) -> None:
    raise AssertionError("the reversal worker must not start for a rejected input")


@pytest.mark.parametrize("name", ["empty", "text", "no_index", "cut_data", "audio_only"])
def test_reverse_refuses_bad_files_before_starting(bad_files: dict[str, Path], name: str,
                                                   tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(service.supervisor, "supervise", _no_worker)
    result = run(MediaSettings(), bad_files[name], tmp_path / "out.mp4")
    assert not result.ok and result.rejected and result.error
    assert not (tmp_path / "out.mp4").exists()


@pytest.mark.parametrize(("setting", "value", "words"), [
    ("max_duration_s", 2.5, ["lasts 3.0 s", "2.5 s", "media.max_duration_s",
                             "VMKEEPER_MEDIA_MAX_DURATION_S"]),
    ("max_pixels", 160 * 119, ["160x120", "19200 pixels", "19040", "media.max_pixels",
                               "VMKEEPER_MEDIA_MAX_PIXELS"]),
    ("max_size_bytes", 1000, ["over the size limit of 1000 bytes", "media.max_size_bytes",
                              "VMKEEPER_MEDIA_MAX_SIZE_BYTES"]),
])
def test_reverse_refuses_inputs_over_a_limit(clips: Clips, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch, setting: str,
                                             value: float, words: list[str]) -> None:
    monkeypatch.setattr(service.supervisor, "supervise", _no_worker)
    result = run(MediaSettings(**{setting: value}), clips.basic, tmp_path / "out.mp4")
    assert not result.ok and result.rejected and result.error
    for word in words:
        assert word in result.error


def test_reverse_cli_json_and_exit_codes(clips: Clips, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str],
                                         spawned: Spawned) -> None:
    dst = tmp_path / "out.mp4"
    # In-process (no exec): the CLI's warm worker probes and reverses, supervised from here.
    assert main(["media", "reverse", str(clips.tiny), str(dst), "--json"]) == 0
    assert spawned.left() == []
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is True and data["output"] == str(dst) and data["error"] is None
    assert data["input"]["video"]["width"] == 160 and data["seconds"] > 0
    assert main(["media", "reverse", str(clips.audio_only), str(dst), "--json"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["ok"] is False and "no video stream" in data["error"]
    assert main(["media", "reverse", str(clips.tiny), str(tmp_path / "out.avi")]) == 2
    assert spawned.left() == []  # refused after the probe, or before it: its worker stopped
