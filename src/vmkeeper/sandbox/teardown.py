"""``sandbox down``: stop the watcher, the agent, PM2 and Apache, then kill anything of the
sandbox left behind (run from inside its folder or with its PM2_HOME).

Split out of ``sandbox/service.py``, which re-exports it.
"""

from __future__ import annotations

import os

import psutil

from vmkeeper.adapters import apache as apache_adapter
from vmkeeper.adapters import host
from vmkeeper.errors import SandboxError
from vmkeeper.progress import Progress, note, silent
from vmkeeper.sandbox import agent_proc
from vmkeeper.sandbox.layout import Layout, apache_for, pm2_for


def down(layout: Layout, progress: Progress = silent) -> list[int]:
    """Stop PM2 (daemon and apps) and Apache; kill anything of the sandbox left behind.

    Returns the pids that had to be killed after the orderly stop (normally none).
    """
    if not layout.marker.exists() and not layout.config.exists():
        raise SandboxError(f"No sandbox in {layout.dir}: nothing to take down.")
    if agent_proc.stop(layout, "watch"):
        note(progress, "stop the watcher")
    if agent_proc.stop(layout):
        note(progress, "stop the agent")
    if layout.pm2_bin.exists():
        note(progress, "pm2 kill")
        pm2_for(layout).kill()
    binary = apache_adapter.find_binary() or "apache2"
    note(progress, "stop Apache")
    apache_for(layout, binary).stop()
    return host.kill_processes(sandbox_processes(layout))


# A person's shell or editor standing in the sandbox folder is not the sandbox's.
_NEVER_KILL = {"bash", "sh", "zsh", "fish", "dash", "tmux", "vim", "nano", "less", "python",
               "python3", "pytest", "git"}


def sandbox_processes(layout: Layout) -> list[psutil.Process]:
    """Processes that belong to the sandbox: run from inside its folder or with its PM2_HOME."""
    root = str(layout.dir)
    mine = os.getpid()
    found = []
    for process in psutil.process_iter(["pid", "cwd", "cmdline", "environ"]):
        if process.info["pid"] == mine:
            continue
        cmdline = " ".join(process.info.get("cmdline") or [])
        cwd = process.info.get("cwd") or ""
        environ = process.info.get("environ") or {}
        name = (process.info.get("cmdline") or [""])[0].rsplit("/", 1)[-1]
        if (
            (cwd.startswith(root + os.sep) and name not in _NEVER_KILL)
            or root + os.sep in cmdline
            or environ.get("PM2_HOME") == str(layout.pm2_home)
        ):
            found.append(process)
    return found
