"""The agent's diagnostic reads: `GET /v1/logs/{app}`, `POST /v1/bundle`, `GET /v1/diagnose/oom`.

Each calls the service its CLI command calls (`vmkeeper logs`, `bundle`, `diagnose oom`) and
answers with the same object as that command's ``--json`` (one serializer: jsonable.py). All
three need the ``read`` scope: what they show is redacted, as the CLI's output is. They are
not audited: the audit log records operations (who changed what), and the issue asks no more.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi import Path as PathPart
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.background import BackgroundTask

from vmkeeper.agent.admission import Read
from vmkeeper.errors import UsageError
from vmkeeper.jsonable import to_jsonable
from vmkeeper.settings import LoadedSettings

# A request names how many lines it wants; more than this is a bundle's job, not a page's.
MAX_LOG_LINES = 10_000
# A bundle's sources each get at most this long (the CLI's default is 30 s).
MAX_BUNDLE_TIMEOUT_S = 120.0


class BundleBody(BaseModel):
    """What `vmkeeper bundle` takes as options (-n, --timeout); the archive is the answer."""
    model_config = ConfigDict(extra="forbid")
    lines: int | None = Field(None, ge=1, le=MAX_LOG_LINES)
    timeout_s: float = Field(30.0, ge=1.0, le=MAX_BUNDLE_TIMEOUT_S)


def install(app: FastAPI, loaded: LoadedSettings) -> None:
    """Add the three routes to the agent's app."""
    settings = loaded.settings
    one_bundle = threading.Lock()  # a bundle runs every source: one at a time per agent

    @app.get("/v1/logs/{app_name}")
    def logs(app_name: Annotated[str, PathPart(max_length=200)], _who: Read,
             lines: Annotated[int | None, Query(ge=1, le=MAX_LOG_LINES)] = None) -> Any:
        from vmkeeper.diagnose.bundle_sources import pm2_log_admission
        from vmkeeper.health.logs import read_logs

        try:
            # dump.pm2 may name any file as an app's log: only what the PM2 user owns or
            # what lies under PM2_HOME/logs is read (the bundle's rule).
            report = read_logs(settings, app_name, lines, admit=pm2_log_admission(settings))
        except UsageError as error:
            raise HTTPException(404, str(error)[:1].upper() + str(error)[1:]) from None
        return to_jsonable(report)

    @app.get("/v1/diagnose/oom")
    def oom(_who: Read,
            since: Annotated[str | None, Query(max_length=64)] = None,
            until: Annotated[str | None, Query(max_length=64)] = None) -> Any:
        from vmkeeper.adapters.kernel_log import KernelLogUnavailable
        from vmkeeper.diagnose.oom import diagnose_oom

        try:
            report = diagnose_oom(settings, since=since, until=until)
        except UsageError as error:  # the time is checked before any log is read
            message = str(error)
            raise HTTPException(422, message[:1].upper() + message[1:]) from None
        except KernelLogUnavailable as error:
            raise HTTPException(503, str(error)) from None
        return to_jsonable(report)

    @app.post("/v1/bundle")
    def bundle(_who: Read, body: BundleBody | None = None) -> FileResponse:
        from vmkeeper.diagnose.bundle_sources import standard_bundle

        options = body or BundleBody()
        if not one_bundle.acquire(blocking=False):
            raise HTTPException(409, "A bundle is being made already; try again when it has "
                                "finished.")
        try:
            settings.state_dir.mkdir(parents=True, exist_ok=True)
            folder = Path(tempfile.mkdtemp(prefix="bundle-", dir=settings.state_dir))  # 0700
            try:
                result = standard_bundle(loaded, output=folder, timeout_s=options.timeout_s,
                                         log_lines=options.lines)
            except BaseException:
                shutil.rmtree(folder, ignore_errors=True)
                raise
        finally:
            one_bundle.release()
        return FileResponse(
            result.path, media_type="application/gzip", filename=result.path.name,
            headers={"X-Bundle-Files": str(len(result.files)),
                     "X-Bundle-Skipped": str(len(result.skipped))},
            background=BackgroundTask(shutil.rmtree, folder, ignore_errors=True))
