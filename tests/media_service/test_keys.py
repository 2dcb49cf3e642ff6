"""Storage keys: nothing outside the root, whatever the key or the symlinks say."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmkeeper.media.jobqueue import KeyRefused, resolve_key


@pytest.mark.parametrize("key", ["/etc/passwd", "../secret.mp4", "a/../../secret.mp4", "",
                                 "a\x00.mp4", "..", ".", "a\\..\\b.mp4"])
def test_escaping_or_malformed_keys_are_refused(tmp_path: Path, key: str) -> None:
    with pytest.raises(KeyRefused):
        resolve_key(tmp_path / "root", "reversed", key)


def test_a_symlink_leading_outside_the_root_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (tmp_path / "secret.mp4").write_bytes(b"not yours")
    (root / "link.mp4").symlink_to(tmp_path / "secret.mp4")
    (root / "dir").symlink_to(tmp_path)
    for key in ("link.mp4", "dir/secret.mp4"):
        with pytest.raises(KeyRefused):
            resolve_key(root, "reversed", key)


def test_a_key_maps_to_its_output_under_the_output_folder(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "videos").mkdir(parents=True)
    source, destination = resolve_key(root, "reversed", "videos/clip.MOV")
    assert source == root.resolve() / "videos" / "clip.MOV"
    assert destination == root.resolve() / "reversed" / "videos" / "clip.mov"
    assert resolve_key(root, "reversed", "a.webm")[1].suffix == ".mp4"
