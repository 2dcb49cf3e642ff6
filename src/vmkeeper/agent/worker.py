"""One operation in its own process: ``python -m vmkeeper.agent.worker KIND BODY``.

The agent runs every mutation in a child process group so cancel can kill the whole tree
(npm, next build, git) and a crash of the operation cannot take the agent down. The worker
calls the same service the CLI calls; each ProgressEvent is one JSON line on stderr, the
result (the CLI's --json object, one serializer) one JSON document on stdout.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from vmkeeper import telemetry
from vmkeeper.errors import VmkeeperError
from vmkeeper.jsonable import json_text, to_jsonable
from vmkeeper.progress import Phase, Progress, ProgressEvent
from vmkeeper.settings import Settings, load_settings


def _emit(event: ProgressEvent) -> None:
    sys.stderr.write(json.dumps(to_jsonable(event._asdict())) + "\n")
    sys.stderr.flush()


def run(kind: str, body: dict[str, Any], settings: Settings,
        progress: Progress = _emit) -> Any:
    if kind == "deploy":
        from vmkeeper.releases import deploy

        return deploy.deploy(settings, branch=body.get("branch"), progress=progress)
    if kind == "rollback":
        from vmkeeper.releases import rollback

        release = body.get("release")
        return rollback.rollback(settings, None if release == "previous" else release,
                                 previous=release == "previous")
    if kind == "recover":
        from vmkeeper.recover import recover

        return recover(settings, progress=progress)
    raise SystemExit(f"unknown operation kind {kind!r}")


def main() -> None:
    kind, body = sys.argv[1], json.loads(sys.argv[2])
    flags = json.loads(os.environ.get("VMKEEPER_AGENT_FLAGS", "{}"))
    try:
        settings = load_settings(os.environ.get("VMKEEPER_CONFIG") or None,
                                 flags=flags).settings
        # The operation's span continues the agent request's trace (TRACEPARENT from the runner).
        with telemetry.operation(settings, kind) as handle:
            result = run(kind, body, settings, telemetry.steps(_emit))
            if handle is not None:
                handle.record_result(kind, result)
    except VmkeeperError as error:  # the CLI's one sentence, as the result's error
        _emit(ProgressEvent(str(error), Phase.FAILED))
        sys.stdout.write(json_text({"ok": False, "error": str(error)}) + "\n")
        sys.exit(1)
    sys.stdout.write(json_text(result) + "\n")
    sys.exit(0 if getattr(result, "ok", True) else 1)


if __name__ == "__main__":
    main()
