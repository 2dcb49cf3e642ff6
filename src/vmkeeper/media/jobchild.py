"""One job's worker process: ``python -m vmkeeper.media.jobchild`` < request JSON.

The service starts it under the memory limit (:mod:`vmkeeper.media.isolation`); it runs
:func:`vmkeeper.media.service.reverse` — limits, probe, the PyAV reversal in its own child —
and prints one JSON line with the result. Everything it starts inherits the limit, so the
reversal, not the service that serves HTTP and holds the queue, is what a limit kill takes.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from vmkeeper.settings import MediaSettings


def _silent(_message: str) -> None:
    return None


def run(request: dict[str, Any]) -> dict[str, Any]:
    from vmkeeper.media.service import reverse

    media = MediaSettings.model_validate(request["media"])
    deadline = time.monotonic() + float(request["timeout_s"])
    result = reverse(media, Path(request["source"]), Path(request["destination"]), _silent,
                     deadline)
    return dataclasses.asdict(result)


def main() -> int:
    request = json.loads(sys.stdin.read())
    try:
        answer = run(request)
    except MemoryError:
        # Under RLIMIT_AS the parent reads this to say "memory limit".
        sys.stdout.write(json.dumps({"ok": False, "error": "MemoryError"}) + "\n")
        return 1
    sys.stdout.write(json.dumps(answer, default=str) + "\n")
    return 0


if __name__ == "__main__":
    from vmkeeper import logs

    logs.configure()  # an entry point: importing the package configures nothing
    sys.exit(main())
