"""Which reader spools which piece, and when a piece reaches the encoder (fast: no FFmpeg run).

``reverse.spooled_pieces`` with readers and spools that only record what is asked of them: the
frame-threaded fill reads the video's last piece, and the one before it too when that one is
much longer (a short last GOP), before anything is handed on.
"""

from __future__ import annotations

import threading
from typing import Any

from vmkeeper.media.frames import Piece
from vmkeeper.media.reverse import spooled_pieces


class Events:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[str] = []

    def add(self, event: str) -> None:
        with self.lock:
            self.seen.append(event)


class Reader:
    def __init__(self, name: str, events: Events) -> None:
        self.name, self.events = name, events

    def read(self, piece: Piece, sink: Any) -> None:
        for number in range(piece.frames):
            sink(f"frame {piece.first + number}")
        self.events.add(f"{self.name} read {piece.first}-{piece.stop}")

    def close(self) -> None:
        self.events.add(f"{self.name} closed")


class Spool:
    def __init__(self) -> None:
        self.frames: list[str] = []

    def write(self, frame: str) -> None:
        self.frames.append(frame)


def pieces_of(*lengths: int) -> list[Piece]:
    pieces, first = [], 0
    for gop, length in enumerate(lengths):
        pieces.append(Piece(first, first + length, gop))
        first += length
    return pieces


def spool_all(pieces: list[Piece]) -> tuple[list[str], list[tuple[Piece, list[str]]]]:
    """The events in order, and each piece as it reached the consumer with what was spooled."""
    events = Events()
    fill, rest = Reader("fill", events), Reader("rest", events)
    got: list[tuple[Piece, list[str]]] = []

    def after(piece: Piece) -> list[Any]:
        events.add(f"audio to {piece.first}")
        return []

    with spooled_pieces(fill, lambda: rest, pieces, [Spool(), Spool()], after) as ready:
        for piece, spool, _audio in ready:
            events.add(f"got {piece.first}-{piece.stop}")
            got.append((piece, list(spool.frames)))
            spool.frames.clear()  # read back: the spool is free again
    return events.seen, got


def test_the_fill_reads_the_last_piece_alone_when_the_one_before_is_not_much_longer() -> None:
    seen, got = spool_all(pieces_of(30, 30, 20))
    # Its audio is encoded as it is handed on, before the one-thread reader starts the next.
    assert seen[:4] == ["fill read 60-80", "fill closed", "audio to 60", "rest read 30-60"]
    assert [piece.first for piece, _ in got] == [60, 30, 0]
    assert "rest read 0-30" in seen


def test_a_short_last_gop_is_filled_with_the_piece_before_it_before_either_is_encoded() -> None:
    # 6 frames after 30: one thread decoding the 30 while x264 encodes the 6 would leave x264
    # idle; the fill (x264 idle anyway) decodes both first.
    seen, got = spool_all(pieces_of(30, 30, 6))
    assert seen[:5] == ["fill read 60-66", "fill read 30-60", "fill closed",
                        "audio to 60", "audio to 30"]
    assert seen.index("fill read 30-60") < seen.index("got 60-66")
    assert [piece.first for piece, _ in got] == [60, 30, 0]
    assert [frames for _, frames in got] == [
        [f"frame {n}" for n in range(60, 66)],
        [f"frame {n}" for n in range(30, 60)],
        [f"frame {n}" for n in range(0, 30)],
    ]
    assert [event for event in seen if event.startswith("rest")] == ["rest read 0-30"]


def test_two_pieces_both_filled_never_open_the_one_thread_reader() -> None:
    seen, got = spool_all(pieces_of(50, 3))
    assert [event for event in seen if "read" in event] == ["fill read 50-53", "fill read 0-50"]
    assert [piece.first for piece, _ in got] == [50, 0]


def test_a_single_piece_is_the_fill_alone() -> None:
    seen, got = spool_all(pieces_of(15))
    assert [event for event in seen if "read" in event] == ["fill read 0-15"]
    assert len(got) == 1 and len(got[0][1]) == 15
