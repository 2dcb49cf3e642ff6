"""`vmkeeper media serve`: the job queue, its runner threads and the HTTP API in one process."""

from __future__ import annotations

import uvicorn

from vmkeeper.agent.app import create_app
from vmkeeper.errors import SettingsError
from vmkeeper.media.jobqueue import ServiceLock, open_queue, store_path
from vmkeeper.settings import Settings, env_name

HOST = "127.0.0.1"  # loopback only: the backend on the same VM is the one caller


def serve(settings: Settings, port: int | None = None) -> None:
    """Run until SIGINT/SIGTERM; the running job's worker is killed and its job requeued."""
    token = settings.media.token
    if not token:
        raise SettingsError(
            f"media.token is not set: set it ({env_name('media.token')} or the TOML file) "
            "and give the same token to the backend.")
    bind = port or settings.apps.media.port
    if bind is None:
        raise SettingsError("apps.media.port is not set: give the media service a port.")
    lock = ServiceLock(store_path(settings).with_name("service.lock"))
    lock.acquire()
    from vmkeeper import telemetry

    telemetry.start(settings, "vmkeeper-media")  # the queue's families, its jobs' traces
    queue = open_queue(settings)
    try:
        queue.start()
        config = uvicorn.Config(create_app(queue, token), host=HOST, port=bind,
                                log_level="warning", access_log=False, lifespan="off")
        uvicorn.Server(config).run()
    finally:
        queue.stop()
        lock.release()
