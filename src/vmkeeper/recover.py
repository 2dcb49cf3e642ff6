"""`vmkeeper recover`: the runbook's 503 decision tree, acted on and verified.

Health's one diagnosis (health/verdict.py) is planned into steps (recover_plan.py); every step
is recorded (command, output, outcome) and followed by a re-check. Attempts are bounded, with
backoff; a ladder that does not heal stops with its evidence instead of looping. Only PM2 and
the PM2 unit are ever touched (the plan's guard refuses anything else) — and Apache's switch map,
routed back to the frontend's port when a killed deploy left it elsewhere (the repair deploy
and rollback run first, never Apache's config or a restart of it).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from vmkeeper import proc
from vmkeeper.errors import CommandError, VmkeeperError
from vmkeeper.health import facts as gathering
from vmkeeper.health.model import CHAIN, Cause, Check, Diagnosis, HealthReport, Layer, Status
from vmkeeper.health.service import run_health
from vmkeeper.health.verdict import diagnose
from vmkeeper.progress import Progress, note, silent
from vmkeeper.recover_plan import (
    FINISH_SWITCH,
    ForbiddenCommand,
    Plan,
    Step,
    Tools,
    guard,
    plan_recovery,
)
from vmkeeper.settings import Settings

Sleep = Callable[[float], None]
Clock = Callable[[], float]
Observe = Callable[[], HealthReport]
Evidence = Callable[[Settings, Diagnosis], list[str]]
FinishSwitch = Callable[[], list[str]]  # what it did, in words

__all__ = ["ForbiddenCommand", "RecoverResult", "guard", "recover"]


@dataclass(frozen=True)
class Action:
    command: str
    ok: bool
    outcome: str  # "planned", "done", "failed"
    output: str = ""
    seconds: float = 0.0
    recheck: str | None = None  # the verdict right after it


@dataclass(frozen=True)
class RecoverResult:
    diagnosis: str
    ok: bool
    dry_run: bool
    actions: list[Action]
    notes: list[str]
    attempts: int
    seconds: float
    health_before: HealthReport
    health_after: HealthReport | None = None
    plan: list[str] = field(default_factory=list)


def chain_broken(report: HealthReport) -> list[Check]:
    return [c for c in report.checks if c.layer in CHAIN and c.status is Status.CRITICAL]


def growing(first: HealthReport, second: HealthReport) -> list[str]:
    """Apps whose PM2 restart count grew between two reports: crash-looping while they look
    online."""
    before, after = _restarts(first), _restarts(second)
    return sorted(name.removeprefix("pm2:") for name, count in after.items()
                  if name in before and count > before[name])


def _restarts(report: HealthReport) -> dict[str, int]:
    return {c.name: c.observed["restarts"] for c in report.checks
            if c.name.startswith("pm2:") and isinstance(c.observed, dict)
            and isinstance(c.observed.get("restarts"), int)}


def diagnosis_of(report: HealthReport, looping: list[str]) -> Diagnosis:
    """Health's diagnosis; apps seen restarting between two looks at a chain that answers make
    it a crash loop in the PM2 apps layer (one look cannot see it)."""
    found = diagnose(report.checks, report.supervisor)
    if found.layer in CHAIN or not looping:
        return found
    apps = tuple(c for c in report.checks if c.name.removeprefix("pm2:") in looping)
    return Diagnosis(Layer.APPS, Cause.FLAPPING, found.evidence, found.advice, found.line,
                     apps, report.supervisor)


@dataclass
class _Ladder:
    tools: Tools
    observe: Observe
    runner: proc.Runner
    progress: Progress
    sleep: Sleep
    clock: Clock
    finish_switch: FinishSwitch
    actions: list[Action] = field(default_factory=list)

    def run(self, plan: Plan) -> None:
        if plan.finish_switch:
            self.finish()
        for step in plan.steps:
            self.act(step)

    def finish(self) -> Action:
        note(self.progress, FINISH_SWITCH)
        started = self.clock()
        try:
            done = self.finish_switch()
            ok, output = True, "; ".join(done) or "nothing was left to finish"
        except VmkeeperError as error:
            ok, output = False, str(error)
        after = self.observe()
        action = Action(FINISH_SWITCH, ok, "done" if ok else "failed", output,
                        self.clock() - started, after.verdict)
        self.actions.append(action)
        return action

    def act(self, step: Step) -> Action:
        note(self.progress, step.command)
        started = self.clock()
        try:
            result = self.runner(step.argv, timeout=step.timeout, env=step.env, check=False)
            ok, output = result.ok, result.output_tail
        except CommandError as error:
            ok, output = False, str(error)
        after = self.observe()
        action = Action(step.command, ok, "done" if ok else "failed", output,
                        self.clock() - started, after.verdict)
        self.actions.append(action)
        return action

    def look_twice(self, first: HealthReport) -> tuple[HealthReport, list[str]]:
        """A chain that answers is looked at again after 1.5 s: a crash loop looks online
        between crashes. Returns the second look and the apps whose restarts grew."""
        self.sleep(1.5)
        again = self.observe()
        return again, growing(first, again)

    def settled(self, deadline: float) -> tuple[HealthReport, list[str]]:
        """Re-check until the chain is healthy twice in a row with no new restarts, or the
        deadline passes. Returns the last report and the apps still restarting."""
        last = self.observe()
        looping: list[str] = []
        while True:
            if not chain_broken(last):
                again, looping = self.look_twice(last)
                if not chain_broken(again) and not looping:
                    return again, []
                last = again
            if self.clock() >= deadline:
                return last, looping
            self.sleep(1.0)
            last = self.observe()


def oom_evidence(settings: Settings, diagnosis: Diagnosis) -> list[str]:
    """Whether the kernel's OOM killer is behind this outage: a note to read before trusting
    the recovery."""
    notes: list[str] = []
    if Cause.OOM_KILL in diagnosis.causes_in(Layer.SUPERVISOR):
        notes.append(f"{settings.pm2.unit} failed with result oom-kill: run "
                     "`vmkeeper diagnose oom --since -1h` before trusting this recovery.")
    try:
        from vmkeeper.diagnose.oom import diagnose_oom

        quick = settings.model_copy(update={"diagnose": settings.diagnose.model_copy(
            update={"read_timeout_s": settings.health.check_timeout_s})})
        found = diagnose_oom(quick, since=settings.health.oom_lookback)
    except VmkeeperError as error:
        notes.append(f"kernel log not checked for OOM kills ({error})")
        return notes
    except ImportError:  # the diagnose service is another issue's; recover works without it
        return notes
    if found.events:
        victims = ", ".join(sorted({e.victim.name for e in found.events}))
        notes.append(f"the kernel OOM killer killed {victims} in the last hour: see "
                     f"`vmkeeper diagnose oom --since {settings.health.oom_lookback}`.")
    return notes


def _observer(settings: Settings) -> Observe:
    pm2 = gathering.health_pm2(settings)
    return lambda: run_health(settings, remember=False, pm2=pm2)


def _finisher(settings: Settings, progress: Progress) -> FinishSwitch:
    def finish() -> list[str]:
        from vmkeeper.adapters.pm2 import from_settings
        from vmkeeper.releases.handover import activation_for

        pm2 = from_settings(settings.pm2.bin, settings.pm2.home, settings.pm2.timeout_s)
        return activation_for(settings, pm2, progress).recover()
    return finish


def recover(settings: Settings, *, dry_run: bool = False, progress: Progress = silent,
            sleep: Sleep = time.sleep, clock: Clock = time.monotonic,
            observe: Observe | None = None, runner: proc.Runner = proc.run,
            evidence: Evidence = oom_evidence,
            finish_switch: FinishSwitch | None = None) -> RecoverResult:
    """Diagnose, plan, act, re-check; up to health.recover_attempts attempts with doubling
    backoff within health.recover_timeout_s. ``observe`` (a health look), ``runner``,
    ``sleep``, ``clock``, ``evidence`` and ``finish_switch`` are the fast tests' seams.

    Raises ForbiddenCommand if a plan ever held a command the runbook forbids.
    """
    started = clock()
    tools = Tools.from_settings(settings)
    ladder = _Ladder(tools, observe or _observer(settings), runner, progress, sleep, clock,
                     finish_switch or _finisher(settings, progress))
    before = ladder.observe()
    looping: list[str] = []
    if not chain_broken(before):
        before, looping = ladder.look_twice(before)
    diagnosis = diagnosis_of(before, looping)
    first = plan_recovery(diagnosis, tools)
    notes = evidence(settings, diagnosis) if not first.healthy else []
    planned = _planned(first)
    if first.healthy or first.refused or dry_run:
        actions = [Action(c, True, "planned") for c in planned] if dry_run else []
        return RecoverResult(first.diagnosis, first.healthy, dry_run, actions, notes, 0,
                             clock() - started, before, None if dry_run else before, planned)
    return _climb(settings, ladder, first, before, notes, started)


def _planned(plan: Plan) -> list[str]:
    return [FINISH_SWITCH] * plan.finish_switch + [step.command for step in plan.steps]


def _climb(settings: Settings, ladder: _Ladder, first: Plan, before: HealthReport,
           notes: list[str], started: float) -> RecoverResult:
    """The attempts: act on the plan, wait for the chain to settle, re-plan, back off."""
    health = settings.health
    deadline = started + health.recover_timeout_s
    plan, report, attempt = first, before, 0
    looping: list[str] = []
    planned = _planned(first)
    for attempt in range(1, health.recover_attempts + 1):
        ladder.run(plan)
        window = min(deadline, ladder.clock() + health.recover_timeout_s / health.recover_attempts)
        report, looping = ladder.settled(window)
        if not chain_broken(report) and not looping:
            return RecoverResult(first.diagnosis, True, False, ladder.actions, notes, attempt,
                                 ladder.clock() - started, before, report, planned)
        plan = plan_recovery(diagnosis_of(report, looping), ladder.tools)
        if plan.refused or plan.healthy or attempt == health.recover_attempts \
                or ladder.clock() >= deadline:
            break
        backoff = health.recover_backoff_s * 2 ** (attempt - 1)
        note(ladder.progress, f"not healed yet ({report.verdict}); next attempt in {backoff:g} s")
        ladder.sleep(backoff)
    still = f" ({', '.join(looping)} still restarting)" if looping else ""
    diagnosis = (f"{first.diagnosis} Not healed after {attempt} attempt(s): {report.verdict}"
                 f"{still}" + (f" ({plan.diagnosis})" if plan.refused else ""))
    return RecoverResult(diagnosis, False, False, ladder.actions, notes, attempt,
                         ladder.clock() - started, before, report, planned)
