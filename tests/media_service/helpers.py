"""Test videos (media/clips.py), settings for a throwaway storage root, a fake clock."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.clock import FakeClock  # noqa: F401 - re-exported for the media tests
from vmkeeper.media.clips import Clip, Sound, make_clip
from vmkeeper.settings import Settings

TOKEN = "test-token-0123456789abcdef"  # ≥ 128 bits: weaker tokens are refused


def make_video(path: Path, seconds: float = 2, size: str = "160x120", rate: int = 15) -> Path:
    """A tiny H.264 + AAC MP4 (testsrc2 and a sine), GOP of one second."""
    return make_clip(path, Clip(size=size, rate=rate, seconds=seconds, gop=rate,
                                sound=Sound.BEEP))


def corrupt(path: Path, target: Path) -> Path:
    """Zeros in the middle of the media data: the probe passes, the decoder fails mid-way."""
    data = bytearray(path.read_bytes())
    start, end = data.find(b"mdat"), data.find(b"moov")
    assert 0 < start < end, "expects an MP4 with its index at the end"
    middle = start + (end - start) // 2
    data[middle:middle + 3000] = bytes(3000)
    target.write_bytes(bytes(data))
    return target


def settings_for(tmp: Path, **media: Any) -> Settings:
    values: dict[str, Any] = {"storage_root": str(tmp / "uploads"), "token": TOKEN, **media}
    (tmp / "uploads").mkdir(parents=True, exist_ok=True)
    return Settings.model_validate({"state_dir": str(tmp / "state"), "media": values})


class Records:
    """A log sink: every record the service would print as one JSON line."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __call__(self, event: str, **fields: Any) -> None:
        self.records.append({"event": event, **fields})

    def states(self, job_id: str) -> list[str]:
        return [r["state"] for r in self.records if r.get("job_id") == job_id]
