"""The loop: look, decide (state.step), act with the one recover, keep incidents, alert.

Every seam is injected (look, recover, alert, clock, sleep) so the fast tests run it on a fake
world with a FakeClock; the defaults are health's observation and `recover`'s ladder. The loop
survives any failure of what it watches: a look that raises is a bad look."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from vmkeeper.errors import VmkeeperError
from vmkeeper.settings import WatchSettings
from vmkeeper.watch.state import Decision, Look, Phase, WatchState, recovered, step
from vmkeeper.watch.store import Incident, Store


@dataclass(frozen=True)
class Observation:
    look: Look
    diagnosis: str  # health's verdict line


@dataclass(frozen=True)
class Attempt:
    ok: bool
    diagnosis: str
    actions: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Alert:
    kind: str  # "open" | "gave_up" | "resolved"
    incident: Incident


Observe = Callable[[], Observation]
Recover = Callable[[], Attempt]
Notify = Callable[[Alert], None]
Capture = Callable[[Incident], list[str]]


@dataclass
class Watcher:
    rules: WatchSettings
    store: Store
    observe: Observe
    recover: Recover
    notify: Notify = lambda _alert: None
    capture: Capture = lambda _incident: []
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep

    def look(self) -> Observation:
        try:
            return self.observe()
        except VmkeeperError as error:
            return Observation(Look(healthy=False, actionable=False), f"not observed: {error}")

    def cycle(self) -> Decision:
        """One look and what follows from it; the state is saved after each cycle."""
        state = self.store.load_state()
        seen = self.look()
        now = self.clock()
        new, decision = step(state, seen.look, now, self.rules)
        if state.phase is Phase.UP and new.phase is not Phase.UP:
            new = self._open(new, seen, now)
        elif decision is Decision.GIVE_UP and new.incident:
            self._alert("gave_up", self.store.update(new.incident, state="gave_up"))
        elif decision is Decision.RESOLVE and new.incident:
            opened = self.store.get(new.incident)
            took = now - opened.opened_at if opened else None
            self._alert("resolved", self.store.update(
                new.incident, state="resolved", resolved_at=now, seconds_to_recover=took))
            new = replace(new, incident=None)
        if decision is Decision.RECOVER:
            new = self._recover(new)
        self.store.save_state(new)
        return decision

    def _open(self, state: WatchState, seen: Observation, now: float) -> WatchState:
        gave_up = state.phase is Phase.GAVE_UP
        incident = Incident(f"{int(now)}-{len(self.store.incidents()) + 1}",
                            "gave_up" if gave_up else "open", now, seen.diagnosis)
        self.store.save(incident)
        incident = self.store.update(incident.id, evidence=self.capture(incident)) or incident
        self._alert("gave_up" if gave_up else "open", incident)
        return replace(state, incident=incident.id)

    def _recover(self, state: WatchState) -> WatchState:
        try:
            attempt = self.recover()
        except VmkeeperError as error:  # a refused or failed ladder is a failed attempt
            attempt = Attempt(False, str(error))
        done = self.clock()
        if state.incident:
            incident = self.store.get(state.incident)
            if incident:
                self.store.update(incident.id, actions=[
                    *incident.actions, {"at": done, "ok": attempt.ok,
                                        "diagnosis": attempt.diagnosis,
                                        "steps": attempt.actions}])
        return recovered(state, attempt.ok, done, self.rules)

    def _alert(self, kind: str, incident: Incident | None) -> None:
        if incident is not None:
            self.notify(Alert(kind, incident))

    def run(self, cycles: int | None = None) -> None:
        """Cycle every interval_s, for ever (or ``cycles`` times)."""
        done = 0
        while cycles is None or done < cycles:
            started = self.clock()
            self.cycle()
            done += 1
            self.sleep(max(0.0, self.rules.interval_s - (self.clock() - started)))
