"""A job child that never answers and starts a grandchild in a session of its own (a stand-in
for an FFmpeg that escaped the worker's process group): the service must kill both."""

from __future__ import annotations

import json
import sys
import time

from vmkeeper import proc

if __name__ == "__main__":
    source = json.loads(sys.stdin.read())["source"]  # in the grandchild's argv: tests find it
    with proc.start([sys.executable, "-c", "import time; time.sleep(600)", source], timeout=600,
                    stdout=proc.DEVNULL, stderr=proc.DEVNULL):
        time.sleep(600)
