"""The one gated switch (runbook step 7, and the manual rollback): make a release live, wait
until it serves, go back to the previous one if it does not, `pm2 save`, check the dump.

Deploy and rollback both switch through :meth:`Switcher.switch_to` and differ only in how they
pick the target. Nothing in here raises for a failure of the outside world: a target that never
answers, a revert that fails too, a `pm2 save` that fails — each is a value in the outcome, so
the caller always records how the run finished. How the release is made live is the
replaceable step (:class:`activation.Activation`; the runbook's delete+start by default).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, Self

from vmkeeper.adapters import http
from vmkeeper.adapters.pm2 import Pm2
from vmkeeper.errors import VmkeeperError
from vmkeeper.releases import handover, live, store
from vmkeeper.releases.activation import Activation, Target
from vmkeeper.settings import Settings

Readiness = http.Readiness


def frontend_url(settings: Settings) -> str:
    app = settings.apps.frontend
    return f"http://127.0.0.1:{app.port}{app.health_path or '/'}"


@dataclass(frozen=True)
class SwitchOutcome:
    """How a switch went. ``serving``: the target took. ``failure``: why it did not (worded to
    follow "the release …"); ``revert``: how going back went, when it had to."""

    target: Target
    previous: Target | None
    serving: bool
    seconds: float
    ready_seconds: float | None = None
    failure: str | None = None
    reverted: bool = False
    revert: str | None = None
    revert_failed: bool = False
    saved: bool = False
    save_error: str | None = None
    dump_agrees: bool | None = None
    dump_note: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def live(self) -> Target | None:
        """Which frontend should be live now (and in the dump)."""
        return self.target if self.serving else self.previous


class Gate(Protocol):
    """When is a target serving? The default gate is :meth:`Switcher.wait_until_serving`; an
    activation that serves a release elsewhere first (another name, another port) brings its
    own."""

    def __call__(self, target: Target) -> Readiness: ...


@dataclass(frozen=True)
class Switcher:
    """What a switch uses; the fast tests pass the fake PM2 world, its fake site and clock.
    ``activation`` and ``gate`` are the replaceable steps (how a release goes live, how its
    readiness is judged)."""

    settings: Settings
    pm2: Pm2
    activation: Activation
    probe: http.Prober = http.probe
    clock: http.Clock = time.monotonic
    sleep: http.Sleep = time.sleep
    gate: Gate | None = None

    def wait_until_serving(self, app_dir: Path, timeout: float | None = None) -> Readiness:
        """The frontend answers its expected status AND PM2 runs `frontend-dev` online from
        ``app_dir``: a 200 from an old server still on the port is not readiness."""
        app = self.settings.apps.frontend

        def from_app_dir() -> str | None:
            running = self.pm2.app(app.name)
            if running is not None and running.online and running.cwd is not None \
                    and running.cwd.resolve() == app_dir.resolve():
                return None
            return f"PM2 shows {app.name} " + (
                "missing" if running is None else f"{running.status} in {running.cwd}")

        return http.wait_until_answering(
            {frontend_url(self.settings): app.expected_status or 200},
            timeout=timeout if timeout is not None else self.settings.releases.ready_timeout_s,
            probe=self.probe, clock=self.clock, sleep=self.sleep, also=from_app_dir,
        )

    def _bring_up(self, target: Target) -> tuple[Readiness | None, str | None]:
        """Activate and wait; the error is a phrase that follows "the release …"."""
        try:
            self.activation.activate(target)
            ready = self.gate(target) if self.gate is not None \
                else self.wait_until_serving(target.app_dir)
        except (VmkeeperError, OSError) as error:
            return None, f"could not be started ({_sentence(error)})"
        if not ready.ok:
            expected = self.settings.apps.frontend.expected_status or 200
            return ready, (f"did not answer {expected} within {ready.seconds:.0f} s "
                           f"(last: {ready.last})")
        return ready, None

    def _go_back(self, previous: Target | None) -> tuple[str, bool]:
        """The automatic revert, guarded: its own failure is reported, never raised."""
        name = self.settings.apps.frontend.name
        if previous is None:
            try:
                self.activation.stop()
            except (VmkeeperError, OSError) as error:
                return (f"there was no previous frontend to go back to, and stopping {name} "
                        f"failed too ({_sentence(error)})"), True
            return f"there was no previous frontend to go back to, so {name} was stopped", False
        ready, failure = self._bring_up(previous)
        if failure is None:
            return f"reverted: {previous.label} is serving again", False
        if ready is None:
            return f"REVERT FAILED, the site may be down: {previous.label} {failure}", True
        return f"reverted to {previous.label}, but it does not answer either ({ready.last})", True

    def _mark(self, target: Target, state: store.ReleaseState, notes: list[str]) -> None:
        if target.release_id is None:
            return
        try:
            store.set_state(self.settings.releases.root / target.release_id, state)
        except (OSError, VmkeeperError) as error:
            notes.append(f"could not mark {target.release_id} {state.value} ({error})")

    def switch_to(self, target: Target, previous: Target | None) -> SwitchOutcome:
        """Make ``target`` live, gated on readiness; on failure go back to ``previous`` (or stop
        the frontend when there is none). Then `pm2 save --force` and compare the dump with
        what should be live. Marks the target good or failed."""
        started = self.clock()
        notes: list[str] = []
        ready, failure = self._bring_up(target)
        notes.extend(self.activation.report())
        revert: str | None = None
        revert_failed = False
        if failure is None:
            self._mark(target, store.ReleaseState.GOOD, notes)
        else:
            self._mark(target, store.ReleaseState.FAILED, notes)
            revert, revert_failed = self._go_back(previous)
        saved, save_error = True, None
        try:
            self.pm2.save(force=True)
        except (VmkeeperError, OSError) as error:
            saved, save_error = False, _sentence(error)
        expected = target if failure is None else previous
        agrees: bool | None = None
        why: str | None = None
        if expected is not None and saved:
            agrees, why = live.dump_matches(self.settings, self.pm2, expected.app_dir)
        return SwitchOutcome(
            target=target, previous=previous, serving=failure is None,
            seconds=self.clock() - started,
            ready_seconds=ready.seconds if ready is not None and failure is None else None,
            failure=failure, reverted=failure is not None, revert=revert,
            revert_failed=revert_failed, saved=saved, save_error=save_error,
            dump_agrees=agrees, dump_note=None if agrees else why, notes=notes,
        )


def switcher_for(settings: Settings, pm2: Pm2) -> Switcher:
    """The production switch: the zero-downtime handover where Apache carries vmkeeper's
    snippet, else the runbook's delete+start in a detached child; real HTTP."""
    return Switcher(settings, pm2, handover.activation_for(settings, pm2))


def _sentence(error: BaseException) -> str:
    return str(error).rstrip(".")


@dataclass
class TrafficWatch:
    """Requests through the proxy while the switch runs: how many failed, the longest gap."""

    url: str
    interval_s: float = 0.1
    timeout_s: float = 2.0
    probe: http.Prober = http.probe
    requests: int = 0
    failed: int = 0
    longest_gap_s: float = 0.0
    _stop: threading.Event | None = None
    _thread: threading.Thread | None = None

    def _loop(self) -> None:
        assert self._stop is not None
        last_ok = time.monotonic()
        while not self._stop.is_set():
            result = self.probe(self.url, timeout=self.timeout_s)
            now = time.monotonic()
            self.requests += 1
            if result.status is not None and result.status < 500:
                last_ok = now
            else:
                self.failed += 1
                self.longest_gap_s = max(self.longest_gap_s, now - last_ok)
            self._stop.wait(self.interval_s)

    def __enter__(self) -> Self:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="traffic-watch", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        assert self._stop is not None and self._thread is not None
        self._stop.set()
        self._thread.join(timeout=self.timeout_s + 1)
