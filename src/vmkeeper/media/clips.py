"""Test clips from FFmpeg's lavfi sources: the one generator for tests, benchmarks and the demo.

Why several kinds of content: ``testsrc2`` is the easiest picture there is to compress and
decode, so a reversal measured only on it looks faster than it is on real footage. The fractal
zoom (``mandelbrot``), Conway's ``life`` and an elementary cellular automaton (``cellauto``) move
everywhere in the frame; rendered small, scaled up and overlaid with temporal film grain
(``noise``), they cost a decoder and x264 what camera footage does (5–10 Mbit/s at 720p, crf 23).
The encodings cover what uploads bring: H.264 with B-frames (closed or open GOP), HEVC, VP9 with
alt-ref frames, any frame rate, variable frame rate, odd sizes, a display rotation, a start offset.

testsrc2 changes every frame, so a lost, doubled or swapped frame changes a checksum; the stereo
tone has a different pitch per channel, so a channel swap shows too. AAC is encoded with PNS off
(``-aac_pns 0``): PNS noise would make two decodes of the same audio differ slightly.

Generated with imageio-ffmpeg's ``ffmpeg`` (``adapters/ffmpeg.ffmpeg_binary``) through ``proc.run``.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

from vmkeeper import proc
from vmkeeper.adapters.ffmpeg import ffmpeg_binary


class Content(enum.StrEnum):
    TESTSRC2 = "testsrc2"
    MANDELBROT = "mandelbrot"
    LIFE = "life"
    CELLAUTO = "cellauto"


class Codec(enum.StrEnum):
    H264 = "h264"  # x264 veryfast, closed GOP
    H264_OPEN_GOP = "h264-open-gop"  # B-frames after a keyframe may reference the GOP before
    HEVC = "hevc"  # x265
    VP9 = "vp9"  # libvpx with alt-ref (hidden) frames; give the path .webm or .mkv


class Sound(enum.StrEnum):
    TONES = "tones"  # 440 Hz left, 660 Hz right
    BEEP = "beep"  # mono sine with a beep every second (the shared notes' inputs)
    SURROUND = "surround"  # 5.1, a different pitch per channel
    NONE = "none"


_SOUND = {
    Sound.TONES: "aevalsrc=sin(440*2*PI*t)*0.5|sin(660*2*PI*t)*0.4:s=48000:d={d}",
    Sound.BEEP: "sine=frequency=440:beep_factor=4:sample_rate=48000:duration={d}",
    Sound.SURROUND: "aevalsrc=" + "|".join(f"sin({220 * (n + 2)}*2*PI*t)*0.3" for n in range(6))
                    + ":s=48000:c=5.1:d={d}",
}

# Each source drawn at a quarter of the size (what makes it cheap to generate), scaled up.
_SOURCE = {
    Content.MANDELBROT: "mandelbrot=size={small}:rate={rate}",
    Content.LIFE: "life=size={small}:rate={rate}:mold=10:ratio=0.3:"
                  "death_color=#c83232:life_color=#32c832",
    Content.CELLAUTO: "cellauto=size={small}:rate={rate}:rule=110",
}


@dataclass(frozen=True)
class Clip:
    """What to generate. ``grain`` is the ``noise`` filter's strength (0: none)."""

    content: Content = Content.TESTSRC2
    size: str = "160x120"
    rate: int = 30
    seconds: float = 3
    gop: int = 30
    bframes: int = 2
    codec: Codec = Codec.H264
    crf: int = 23
    pix_fmt: str = "yuv420p"  # H.264/HEVC 4:2:0 cannot be odd-sized: yuv444p, or VP9
    grain: int = 0
    sound: Sound = Sound.TONES
    audio_seconds: float | None = None  # default: as long as the picture
    audio_codec: str | None = None  # default: libopus in WebM, AAC (PNS off) elsewhere
    vfr: bool = False  # every other second drops a third of its frames (20 of 30 fps)
    rotation: int = 0  # display matrix angle, counter-clockwise (as a phone writes it)
    start_s: float = 0  # the file's timestamps start here (-output_ts_offset)

    @property
    def dimensions(self) -> tuple[int, int]:
        width, height = (int(v) for v in self.size.split("x"))
        return width, height

    def video_filter(self) -> str:
        width, height = self.dimensions
        if self.content is Content.TESTSRC2:
            # rgb24 first: with a 4:2:0 consumer testsrc2 rounds an odd size down to even.
            odd = ",format=rgb24" if width % 2 or height % 2 else ""
            chain = f"testsrc2=size={self.size}:rate={self.rate}{odd}"
        else:
            small = f"{max(2, width // 4)}x{max(2, height // 4)}"
            chain = (_SOURCE[self.content].format(small=small, rate=self.rate)
                     + f",scale={width}:{height}:flags=bicubic")
        chain += f",format={self.pix_fmt}"
        if self.grain:
            chain += f",noise=alls={self.grain}:allf=t+u"
        if self.vfr:
            chain += ",select='if(mod(floor(t),2),1,lt(mod(n,3),2))'"
        return chain

    def argv(self, ffmpeg: str, path: Path) -> list[str]:
        args = [ffmpeg, "-nostdin", "-v", "error", "-y",
                "-f", "lavfi", "-t", f"{self.seconds:g}", "-i", self.video_filter()]
        if self.sound is not Sound.NONE:
            audio_seconds = self.seconds if self.audio_seconds is None else self.audio_seconds
            args += ["-f", "lavfi", "-i", _SOUND[self.sound].format(d=f"{audio_seconds:g}")]
        args += ["-map", "0:v"] + (["-map", "1:a"] if self.sound is not Sound.NONE else [])
        if self.vfr:
            args += ["-fps_mode", "passthrough"]
        args += self._video_codec_args()
        if self.sound is not Sound.NONE:
            args += self._audio_codec_args(path)
        if self.start_s:
            args += ["-output_ts_offset", f"{self.start_s:g}"]
        return [*args, str(path)]

    def _video_codec_args(self) -> list[str]:
        gop = ["-g", str(self.gop), "-pix_fmt", self.pix_fmt]
        if self.codec in (Codec.H264, Codec.H264_OPEN_GOP):
            extra = ["-x264-params", "open-gop=1"] if self.codec is Codec.H264_OPEN_GOP else []
            return ["-c:v", "libx264", "-preset", "veryfast", "-crf", str(self.crf),
                    "-bf", str(self.bframes), *gop, *extra]
        if self.codec is Codec.HEVC:
            return ["-c:v", "libx265", "-preset", "veryfast", "-crf", str(self.crf + 5),
                    "-bf", str(self.bframes), "-tag:v", "hvc1",
                    "-x265-params", "log-level=error", *gop]
        return ["-c:v", "libvpx-vp9", "-deadline", "good", "-cpu-used", "8", "-row-mt", "1",
                "-b:v", "0", "-crf", str(self.crf + 10), "-auto-alt-ref", "1",
                "-lag-in-frames", "16", *gop]

    def _audio_codec_args(self, path: Path) -> list[str]:
        codec = self.audio_codec or ("libopus" if path.suffix == ".webm" else "aac")
        args = ["-c:a", codec]
        if codec == "aac":
            args += ["-aac_pns", "0", "-b:a", "192k"]
        return args


def make_clip(path: Path, clip: Clip = Clip(), *, ffmpeg: str | None = None,
              timeout: float = 1800) -> Path:
    """Write ``clip`` to ``path`` (its suffix picks the container) and return ``path``."""
    width, height = clip.dimensions
    if (width % 2 or height % 2) and clip.codec is not Codec.VP9 and clip.pix_fmt.endswith("420p"):
        raise ValueError(f"{clip.codec} in {clip.pix_fmt} cannot be {clip.size}: H.264 and HEVC "
                         "4:2:0 have even sizes; use pix_fmt='yuv444p' or Codec.VP9")
    binary = ffmpeg or ffmpeg_binary(None)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not clip.rotation:
        proc.run(clip.argv(binary, path), timeout=timeout)
        return path
    # The display matrix is an input option of a remux: encode upright, then tag the rotation.
    upright = path.with_name(f".{path.stem}.upright{path.suffix}")
    try:
        proc.run(replace(clip, start_s=0).argv(binary, upright), timeout=timeout)
        # The offset too: a copy would move the first timestamp back to zero.
        offset = ["-output_ts_offset", f"{clip.start_s:g}"] if clip.start_s else []
        remux(binary, ["-display_rotation:v:0", str(clip.rotation), "-i", str(upright),
                       "-c", "copy", *offset, str(path)], timeout=timeout)
    finally:
        upright.unlink(missing_ok=True)
    return path


def make_audio(path: Path, sound: Sound = Sound.TONES, seconds: float = 2, *,
               ffmpeg: str | None = None) -> Path:
    """A file with sound and no picture (AAC in M4A/MP4, Opus in WebM)."""
    codec = Clip(sound=sound)._audio_codec_args(path)
    remux(ffmpeg or ffmpeg_binary(None),
          ["-f", "lavfi", "-i", _SOUND[sound].format(d=f"{seconds:g}"), *codec, str(path)])
    return path


def remux(ffmpeg: str, args: Sequence[str], *, timeout: float = 120) -> None:
    """Run ``ffmpeg`` quietly with ``args`` (a remux, a cut, an audio-only file)."""
    proc.run([ffmpeg, "-nostdin", "-v", "error", "-y", *args], timeout=timeout)


def cached_clip(folder: Path, name: str, clip: Clip, *, ffmpeg: str | None = None) -> Path:
    """``make_clip`` into ``folder/name`` unless an earlier run left it there (benchmarks)."""
    path = folder / name
    if not path.exists() or not path.stat().st_size:
        partial = path.with_name(f".{path.stem}.{os.getpid()}{path.suffix}")
        make_clip(partial, clip, ffmpeg=ffmpeg)
        partial.replace(path)
    return path
