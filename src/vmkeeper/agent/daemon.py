"""`vmkeeper agent serve`: reaper, runner and the /v1 API on loopback TCP and a unix socket.

Loopback only unless TLS is configured: the API deploys code, so it is never offered in clear
text to the network. The socket (0660) serves callers on the VM that a port filter cannot tell
apart (the group owns it).
"""

from __future__ import annotations

import asyncio
import ipaddress
import os
from pathlib import Path
from typing import Any

from vmkeeper import proc
from vmkeeper.agent.runner import Runner
from vmkeeper.agent.store import Store
from vmkeeper.errors import SettingsError
from vmkeeper.settings import LoadedSettings, Settings


def socket_path(settings: Settings) -> Path:
    path = settings.agent.socket
    return path if path.is_absolute() else settings.state_dir / path


def _check_bind(settings: Settings) -> None:
    host = settings.agent.host
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    tls = settings.agent.tls_cert is not None and settings.agent.tls_key is not None
    if not loopback and not tls:
        raise SettingsError(f"agent.host {host} is not a loopback address: set agent.tls_cert "
                            "and agent.tls_key to serve it to the network, or use 127.0.0.1.")


def reap(store: Store) -> int:
    """Kill what a killed agent's operations left running, then mark them failed."""
    for op in store.running():
        if op.pid is not None and op.pid != os.getpid():
            proc.kill_group(op.pid)
    return len(store.reap())


def _start_telemetry(settings: Settings) -> None:
    """The agent exports for its whole life (a span per request, its operations' traces, the
    metric families); a collector that is away costs it nothing, and a broken SDK only this."""
    from vmkeeper import telemetry

    telemetry.start(settings, "vmkeeper-agent")


def serve(settings: Settings, env: dict[str, str], port: int | None = None,
          loaded: LoadedSettings | None = None) -> None:
    """Run until SIGINT/SIGTERM. ``env`` carries the config path and flags to the workers;
    ``loaded`` says where the settings came from (for the bundles it makes)."""
    import uvicorn

    from vmkeeper.agent.api import create_app

    _check_bind(settings)
    _start_telemetry(settings)
    store = Store(settings.state_dir)
    reap(store)
    runner = Runner(store, settings, settings.state_dir / "operations", env)
    runner.start()
    if settings.agent.poll_s > 0:
        from vmkeeper.agent.poller import Poller

        Poller(settings, store, runner).start()
    queue, media_lock, media = _media(settings)
    app = create_app(settings, store, runner, media, loaded)
    cert, key = settings.agent.tls_cert, settings.agent.tls_key
    sock = socket_path(settings)
    sock.unlink(missing_ok=True)
    tcp = uvicorn.Server(uvicorn.Config(
        app, host=settings.agent.host, port=port or settings.agent.port, log_level="warning",
        access_log=False, lifespan="off", ssl_certfile=str(cert) if cert else None,
        ssl_keyfile=str(key) if key else None))
    unix = uvicorn.Server(uvicorn.Config(app, uds=str(sock), log_level="warning",
                                         access_log=False, lifespan="off"))

    async def both() -> None:
        task = asyncio.ensure_future(unix.serve())
        while not unix.started and not task.done():
            await asyncio.sleep(0.05)
        if sock.exists():
            os.chmod(sock, 0o660)
        await tcp.serve()
        unix.should_exit = True
        await task

    try:
        asyncio.run(both())
    finally:
        runner.stop()
        if queue is not None and media_lock is not None:
            queue.stop()
            media_lock.release()


def _media(settings: Settings) -> tuple[Any, Any, Any]:
    """The media queue and its API for /v1/media — none when `media serve` runs already (its
    lock is held): one queue per VM, whichever process serves it."""
    from vmkeeper.agent.admission import admit
    from vmkeeper.agent.app import create_app as media_app
    from vmkeeper.errors import LockHeld
    from vmkeeper.media.jobqueue import ServiceLock, open_queue, store_path

    lock = ServiceLock(store_path(settings).with_name("service.lock"))
    try:
        lock.acquire()
    except (LockHeld, OSError):
        return None, None, None
    queue = open_queue(settings)
    queue.start()
    return queue, lock, media_app(queue, settings.media.token, admit)
