"""The one test hook: pause a deploy at a step so a test can SIGKILL it there.

``VMKEEPER_TEST_PAUSE_AT_STEP=<step>`` pauses when the step starts, ``<step>:end`` after its work
is done but before it is recorded as done. The deploy then creates the file named by
``VMKEEPER_TEST_PAUSE_FILE`` (if set) and sleeps up to ``VMKEEPER_TEST_PAUSE_SECONDS`` (120).
Unset in production; nothing else reads these variables.
"""

from __future__ import annotations

import os
import time
from pathlib import Path


def pause_if_requested(step: str, when: str = "start") -> None:
    wanted = os.environ.get("VMKEEPER_TEST_PAUSE_AT_STEP")
    if not wanted:
        return
    name, _colon, point = wanted.partition(":")
    if name != step or (point or "start") != when:
        return
    flag = os.environ.get("VMKEEPER_TEST_PAUSE_FILE")
    if flag:
        Path(flag).write_text(f"{os.getpid()} {step}:{when}\n")
    time.sleep(float(os.environ.get("VMKEEPER_TEST_PAUSE_SECONDS", "120")))
