"""The watcher's decisions, pure: hysteresis, the recovery budget with backoff, gave-up.

One value (WatchState) goes in with one look at the chain and comes out with what to do; no
clock, no I/O, so the fast tests drive every rule with plain numbers. The state is saved between
`watch --once` runs, so cron users get the same hysteresis as the long-running loop.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

from vmkeeper.settings import WatchSettings


class Phase(str, Enum):
    UP = "up"
    OPEN = "open"  # an incident is open and the watcher may act
    GAVE_UP = "gave_up"  # an incident is open and the watcher no longer acts


class Decision(str, Enum):
    NOTHING = "nothing"
    RECOVER = "recover"
    GIVE_UP = "give_up"
    WAIT = "wait"  # backing off, or a deploy holds the lock
    RESOLVE = "resolve"


@dataclass(frozen=True)
class Look:
    """One cycle's reading: is the chain healthy, may it be acted on, is a deploy running."""

    healthy: bool
    actionable: bool = True  # the diagnosis has a safe recovery plan
    maintenance: bool = False  # a deploy or rollback holds the lock (within its timeout)


@dataclass(frozen=True)
class WatchState:
    phase: Phase = Phase.UP
    bad: int = 0  # consecutive bad cycles
    good: int = 0  # consecutive good cycles
    recoveries: tuple[float, ...] = ()  # when each recovery in the window started
    failed_in_row: int = 0  # recoveries since the last heal, for the backoff
    next_try_at: float = 0.0
    healthy_since: float | None = None
    incident: str | None = None


def _counted(state: WatchState, look: Look, now: float, rules: WatchSettings) -> WatchState:
    if look.healthy:
        since = state.healthy_since if state.healthy_since is not None else now
        state = replace(state, good=state.good + 1, bad=0, healthy_since=since)
        if now - since >= rules.reset_after_s and state.phase is Phase.UP:
            state = replace(state, recoveries=(), failed_in_row=0, next_try_at=0.0)
        return state
    return replace(state, bad=state.bad + 1, good=0, healthy_since=None)


def backoff(rules: WatchSettings, failed_in_row: int) -> float:
    """Seconds before the next recovery: backoff_s doubled per recovery that did not heal."""
    if failed_in_row <= 0:
        return 0.0
    return float(min(rules.backoff_max_s, rules.backoff_s * 2 ** (failed_in_row - 1)))


def step(state: WatchState, look: Look, now: float,
         rules: WatchSettings) -> tuple[WatchState, Decision]:
    """What one cycle's look means. A bad look during a deploy counts for nothing (the
    maintenance window); N bad looks open one incident, M good ones resolve it."""
    if look.maintenance and not look.healthy and state.phase is Phase.UP:
        return replace(state, bad=0, good=0, healthy_since=None), Decision.WAIT
    state = _counted(state, look, now, rules)
    if state.phase is Phase.UP:
        if state.bad < rules.down_after:
            return state, Decision.NOTHING
        return _act(replace(state, phase=Phase.OPEN), look, now, rules)
    if state.good >= rules.up_after:
        return replace(state, phase=Phase.UP, failed_in_row=0, next_try_at=0.0), \
            Decision.RESOLVE
    if look.healthy or state.phase is Phase.GAVE_UP:
        return state, Decision.NOTHING
    return _act(state, look, now, rules)


def _act(state: WatchState, look: Look, now: float,
         rules: WatchSettings) -> tuple[WatchState, Decision]:
    """Recover if the plan is safe and the budget allows; else give up (the caller alerts
    once when an incident opens or gives up: an unsafe outage is one alert, never a loop)."""
    window = tuple(t for t in state.recoveries if now - t < rules.window_s)
    state = replace(state, recoveries=window)
    if not look.actionable or len(window) >= rules.max_recoveries:
        return replace(state, phase=Phase.GAVE_UP), Decision.GIVE_UP
    if now < state.next_try_at:
        return state, Decision.WAIT
    return replace(state, recoveries=(*window, now)), Decision.RECOVER


def recovered(state: WatchState, ok: bool, now: float, rules: WatchSettings) -> WatchState:
    """After a recovery: a failure lengthens the backoff, a heal resets it."""
    failed = 0 if ok else state.failed_in_row + 1
    return replace(state, failed_in_row=failed, next_try_at=now + backoff(rules, failed))
