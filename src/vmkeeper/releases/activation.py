"""How a release becomes the live frontend: the replaceable step of the gated switch.

The switch (switch.py) gates, reverts, saves and records; an ``Activation`` only makes a release
live. The default is the runbook's: `pm2 delete frontend-dev`, then `FRONT_PORT=<port> pm2 start
npm --name frontend-dev -- run start` with the release as cwd (delete+start, since `reload`
cannot change the cwd). Between the two nothing serves; a deploy killed right there would leave
the site down, so the pair runs in a child process of its own session (``python -m
vmkeeper.releases.activation SPEC``) that finishes even if the deploy is SIGKILLed, and
Ctrl-C/SIGTERM are held back in the deploy until the child is done.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Protocol

from vmkeeper import proc
from vmkeeper.adapters.pm2 import Pm2, start_npm_argv
from vmkeeper.settings import Settings

CHILD_MODULE = "vmkeeper.releases.activation"


@dataclass(frozen=True)
class Target:
    """A frontend to make live: its app directory, the release it belongs to (None for a
    directory outside the releases), and what its environment adds (RELEASE_ID, GIT_SHA)."""

    app_dir: Path
    release_id: str | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return self.release_id or str(self.app_dir)


class Activation(Protocol):
    """Makes a target the live frontend. Raises VmkeeperError (or OSError) when it cannot."""

    def activate(self, target: Target) -> None: ...

    def stop(self) -> None:
        """There is nothing to go back to: stop serving the frontend at all."""

    def recover(self) -> list[str]:
        """Finish what a killed run of this activation left (before anything is read as live);
        what was done, in sentences."""

    def report(self) -> list[str]:
        """What the operator should know about the last activation (how it switched)."""


def frontend_env(settings: Settings, extra_env: Mapping[str, str] | None = None) -> dict[str, str]:
    app = settings.apps.frontend
    return {"FRONT_PORT": str(app.port), **app.env, **(extra_env or {})}


def start_argv(settings: Settings, pm2: Pm2) -> list[str]:
    app = settings.apps.frontend
    return start_npm_argv(pm2.bin, app.name, app.start_script or "start")


@dataclass(frozen=True)
class Spec:
    """What the detached child needs, as JSON on its command line."""

    bin: str
    home: str
    timeout: float
    name: str
    cwd: str
    script: str
    env: dict[str, str]

    def to_json(self) -> str:
        return json.dumps(self.__dict__)

    @classmethod
    def from_json(cls, text: str) -> Spec:
        return cls(**json.loads(text))


def delete_then_start(pm2: Pm2, spec: Spec) -> None:
    pm2.delete(spec.name, check=False)
    pm2.start_npm(spec.name, cwd=Path(spec.cwd), script=spec.script, env=spec.env)


def start_frontend(settings: Settings, pm2: Pm2, target: Target) -> None:
    """The runbook's delete+start in this process (the sandbox's restart after `down`)."""
    delete_then_start(pm2, _spec(settings, pm2, target))


def _spec(settings: Settings, pm2: Pm2, target: Target) -> Spec:
    app = settings.apps.frontend
    return Spec(bin=pm2.bin, home=str(pm2.home), timeout=pm2.timeout, name=app.name,
                cwd=str(target.app_dir), script=app.start_script or "start",
                env=frontend_env(settings, target.env))


@contextlib.contextmanager
def interrupts_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM until the block ends, then act on them as usual."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []

    def remember(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)

    previous = {sig: signal.signal(sig, remember) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in received:
            signal.raise_signal(signum)


@dataclass(frozen=True)
class DeleteStart:
    """The runbook's switch, in a detached child. ``runner`` starts that child: proc.run on the
    VM, the fake PM2 world in the fast tests (it runs :func:`child_main` against itself)."""

    settings: Settings
    pm2: Pm2
    runner: proc.Runner = proc.run

    def activate(self, target: Target) -> None:
        spec = _spec(self.settings, self.pm2, target)
        with interrupts_deferred():
            self.runner([sys.executable, "-m", CHILD_MODULE, spec.to_json()],
                        timeout=self.pm2.timeout * 2 + 15)

    def stop(self) -> None:
        self.pm2.delete(self.settings.apps.frontend.name, check=False)

    def recover(self) -> list[str]:
        return []  # the detached child finishes delete+start even when the deploy is killed

    def report(self) -> list[str]:
        return []


def child_main(spec_json: str, runner: proc.Runner = proc.run) -> int:
    """The detached child: delete+start as the spec says; 0 when PM2 took both."""
    spec = Spec.from_json(spec_json)
    delete_then_start(Pm2(bin=spec.bin, home=Path(spec.home), timeout=spec.timeout,
                          runner=runner), spec)
    return 0


if __name__ == "__main__":
    from vmkeeper import logs

    logs.configure()  # an entry point: importing the package configures nothing
    try:
        sys.exit(child_main(sys.argv[1]))
    except Exception as error:  # noqa: BLE001 - the parent reads this line as the failure
        sys.stderr.write(f"switch failed: {error}\n")
        sys.exit(1)
