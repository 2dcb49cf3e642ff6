"""The sandbox's Apache: found (or installed, as root), configured with the VM's proxy routes
and the zero-downtime switch's include, and running.

Split out of ``sandbox/service.py`` (the steps of ``sandbox up``), which calls it.
"""

from __future__ import annotations

import os

from vmkeeper import proc
from vmkeeper.adapters import apache as apache_adapter
from vmkeeper.errors import SandboxError
from vmkeeper.progress import Progress, note
from vmkeeper.releases import handover
from vmkeeper.sandbox.layout import Layout, apache_for
from vmkeeper.settings import Settings


def ensure_apache(progress: Progress) -> str:
    binary = apache_adapter.find_binary()
    if binary:
        return binary
    if os.geteuid() != 0:
        raise SandboxError(
            "Apache 2.4 is not installed and this is not root: run "
            "`sudo apt-get install apache2` (Debian/Ubuntu), then `vmkeeper sandbox up` again."
        )
    note(progress, "Apache is missing: apt-get install apache2 (as root)")
    apt_env = {"DEBIAN_FRONTEND": "noninteractive"}
    proc.run(["apt-get", "update", "-q"], timeout=600, env=apt_env)
    proc.run(
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", "apache2"],
        timeout=900, env=apt_env,
    )
    binary = apache_adapter.find_binary()
    if not binary:
        raise SandboxError("apt-get installed apache2 but no apache2 binary was found.")
    return binary


def _no_graceful(argv: proc.Argv, *, timeout: float, **_kw: object) -> proc.Result:
    """Apache starts right after the include is written; nothing to reload yet."""
    return proc.Result(tuple(str(a) for a in argv), 0, "", "", 0.0)


def ensure_proxy(layout: Layout, settings: Settings, apache_binary: str) -> None:
    """Apache of ``layout`` running with the zero-downtime switch's include (``settings``'
    frontend_include and map, written first: a running Apache reloads, a new one reads them)."""
    apache = apache_for(layout, apache_binary)
    handover.ensure_include(
        settings, runner=proc.run if apache.pid() is not None else _no_graceful)
    ensure_apache_running(layout, apache)


def ensure_apache_running(layout: Layout, apache: apache_adapter.Apache) -> None:
    for folder in ("run", "logs"):
        (layout.apache_root / folder).mkdir(parents=True, exist_ok=True)
    routes = [
        apache_adapter.ProxyRoute("/api", layout.ports.backend),
        apache_adapter.ProxyRoute("/", layout.ports.frontend),
    ]
    # The sandbox's Apache carries the VM snippet: deploys switch without downtime.
    config = apache_adapter.render_config(
        root=layout.apache_root, port=layout.ports.proxy, routes=routes,
        frontend_include=layout.apache_frontend_include,
    )
    changed = not layout.apache_config.exists() or layout.apache_config.read_text() != config
    layout.apache_config.write_text(config)
    if apache.pid() is not None and not changed:
        return
    apache.configtest()
    if apache.pid() is not None:
        apache.stop()
    apache.start()
    if apache.pid() is None:
        raise SandboxError(
            f"Apache did not start: see {layout.apache_error_log}."
        )
