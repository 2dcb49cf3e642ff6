"""The OTLP collector tests export to: the sandbox's own receiver (fl-telemetry,
:mod:`vmkeeper.telemetry.receiver`) run in-process with its store in memory, so tests assert on
what really arrived, decoded with opentelemetry-proto. ``mode="hang"`` accepts connections and
never answers (the slow collector the issue asks about)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

from vmkeeper.telemetry import receiver
from vmkeeper.telemetry.receiver import Store as Received
from vmkeeper.telemetry.receiver import attributes

__all__ = ["Received", "attributes", "serve"]


def serve(mode: str = "answer") -> Iterator[tuple[str, Received]]:
    if mode == "hang":
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # accepted by the kernel, never read, never answered
        try:
            yield f"http://127.0.0.1:{listener.getsockname()[1]}", Received()
        finally:
            listener.close()
        return
    running = receiver.start()
    try:
        yield running.url, running.store
    finally:
        running.stop()
