"""A supervisor that never answers and starts a grandchild in a session of its own (a stand-in
for an FFmpeg that escaped the worker's process group): the service must kill both."""

from __future__ import annotations

import sys
import time

from vmkeeper import proc
from vmkeeper.media.job import SupervisedReversal
from vmkeeper.media.supervisor import confine

if __name__ == "__main__":
    plan = SupervisedReversal.from_json(sys.argv[1])
    confine(plan.confine)  # as the real supervisor does: the grandchild is in the job's cgroup
    # The source is in the grandchild's argv: the tests find it there.
    with proc.start([sys.executable, "-c", "import time; time.sleep(600)", plan.source],
                    timeout=600, stdout=proc.DEVNULL, stderr=proc.DEVNULL):
        time.sleep(600)
