from __future__ import annotations

import os
from pathlib import Path

import pytest

from vmkeeper import flock
from vmkeeper.errors import LockHeld
from vmkeeper.media.jobqueue import ServiceLock


def test_a_second_media_service_on_the_same_store_is_refused_naming_the_first(
        tmp_path: Path) -> None:
    first = ServiceLock(tmp_path / "media" / "service.lock")
    first.acquire()
    try:
        holder = flock.read_holder(first.path)
        assert holder is not None and (holder.pid, holder.what) == (os.getpid(), "media service")
        with pytest.raises(LockHeld) as raised:
            ServiceLock(first.path).acquire()
        message = str(raised.value)
        assert f"Another media service already runs on {first.path.parent}" in message
        assert f"pid {os.getpid()}" in message and "stop it first" in message
    finally:
        first.release()
    again = ServiceLock(first.path)
    again.acquire()  # released: the next service starts
    again.release()
