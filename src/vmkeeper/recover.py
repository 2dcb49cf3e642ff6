"""`vmkeeper recover`: the runbook's 503 decision tree, acted on and verified.

Every action is recorded (command, output, outcome) and followed by a re-check. Attempts are
bounded, with backoff; a ladder that does not heal stops with its evidence instead of looping.
Only PM2 and the PM2 unit are ever touched: never git, never a reset or clean, never the
executor (the runbook: "Do not run executor commands blindly … Use PM2/systemd").
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from vmkeeper import proc
from vmkeeper.adapters import systemd
from vmkeeper.adapters.pm2 import Pm2
from vmkeeper.errors import CommandError, VmkeeperError
from vmkeeper.health import facts as gathering
from vmkeeper.health.model import CHAIN, Check, HealthReport, Layer, Status
from vmkeeper.health.service import run_health
from vmkeeper.progress import Progress, note, silent
from vmkeeper.settings import Settings

Sleep = Callable[[float], None]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Action:
    command: str
    ok: bool
    outcome: str  # "planned", "done", "failed"
    output: str = ""
    seconds: float = 0.0
    recheck: str | None = None  # the verdict right after it


@dataclass(frozen=True)
class Step:
    """One planned action: what the operator would type, and how vmkeeper does it."""

    command: str
    run: Callable[[], proc.Result]


@dataclass(frozen=True)
class Plan:
    diagnosis: str
    steps: list[Step]
    refused: bool = False
    healthy: bool = False


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


class ForbiddenCommand(VmkeeperError):
    pass


def guard(argv: list[str]) -> None:
    """The runbook's line, enforced: recovery never runs git, a reset or clean, or the executor
    itself (restarting the fl-executor PM2 app is process recovery and stays allowed)."""
    program = Path(argv[0]).name if argv else ""
    verb = argv[1] if len(argv) > 1 else ""
    if (program == "git" or verb in ("reset", "clean")
            or any(Path(arg).name.startswith("executor.") for arg in argv)):
        raise ForbiddenCommand(f"refusing to run `{proc.display(argv)}` during recovery.")


def chain_broken(report: HealthReport) -> list[Check]:
    return [c for c in report.checks if c.layer in CHAIN and c.status is Status.CRITICAL]


def _reasons(report: HealthReport, layer: Layer) -> set[str | None]:
    return {c.reason for c in report.broken(layer)}


def plan_recovery(report: HealthReport, settings: Settings, pm2: Pm2,
                  systemctl: systemd.Systemctl, looping: list[str] | None = None) -> Plan:
    """The decision tree, top to bottom, as the runbook walks it. ``looping`` names apps seen
    restarting between two checks (online in each, crashing in between)."""
    broken = chain_broken(report)
    if not broken and looping:
        return Plan(f"{', '.join(looping)} keeps restarting (crash loop) while PM2 shows it "
                    "online; restarting it once more, then read `vmkeeper logs "
                    f"{looping[0]}`.",
                    [Step(f"{pm2.bin} restart {name}", _restarter(pm2, name))
                     for name in looping])
    if not broken:
        return Plan("healthy: nothing to do (" + report.verdict + ")", [], healthy=True)
    apache = _reasons(report, Layer.APACHE)
    if apache & {"not_listening", "refused"}:
        return Plan("Apache itself is down: start it (`sudo systemctl start apache2`) and read "
                    f"{settings.proxy.error_log}; vmkeeper does not change Apache.", [],
                    refused=True)
    foreign = [c for c in report.broken(Layer.PORTS) if c.reason == "foreign_owner"]
    if foreign:
        return Plan("; ".join(c.summary for c in foreign) + ": stop that process (vmkeeper "
                    "never kills what it did not start), then run `vmkeeper recover` again.",
                    [], refused=True)
    supervisor_down = bool(report.broken(Layer.SUPERVISOR))
    app_checks = report.broken(Layer.APPS)
    quiet_roles = {c.details.get("role") for c in report.broken(Layer.PORTS)
                   if c.reason == "not_listening"}
    front_back_quiet = {"frontend", "backend"} <= quiet_roles
    if supervisor_down or (front_back_quiet and len(app_checks) >= 2):
        dump = report.check("dump")
        if dump is not None and dump.status is Status.CRITICAL:
            return Plan(f"PM2 did not restore or was stopped, and {dump.summary}: refusing to "
                        "resurrect from it. Start the apps as the runbook says (frontend from the "
                        "active release with FRONT_PORT), check them, then `pm2 save`.", [],
                        refused=True)
        why = ("Apache is listening but the frontend and backend ports are not: PM2 did not "
               "restore or was stopped")
        if report.supervisor == "systemd":
            unit = settings.pm2.unit
            return Plan(why + f"; restarting the unit {unit}.", [
                Step(proc.display(systemd.reset_failed_argv(systemctl.bin, unit)),
                     lambda: systemctl.reset_failed(unit)),
                Step(proc.display(systemd.restart_argv(systemctl.bin, unit)),
                     lambda: systemctl.restart(unit)),
            ])
        return Plan(why + "; no systemd here, so `pm2 resurrect` from dump.pm2.", [
            Step(f"{pm2.bin} resurrect", pm2.resurrect)])
    names: list[str] = []
    missing: list[str] = []
    for check in app_checks:
        name = check.name.removeprefix("pm2:")
        (missing if check.reason == "missing" else names).append(name)
    roles = {role: app.name for role, app in settings.app_roles().items()}
    for role in sorted(r for r in quiet_roles if r in roles):
        # PM2 says online while the port is dead: the app is wedged, restart it.
        if roles[role] not in names:
            names.append(roles[role])
    if missing:
        return Plan(f"{', '.join(missing)} not in PM2's list: start it as the runbook says, "
                    "then `pm2 save` (a resurrect could duplicate the running apps).", [],
                    refused=True)
    if names:
        return Plan(f"PM2 is up but {', '.join(names)} "
                    f"{'is' if len(names) == 1 else 'are'} not serving; restarting.",
                    [Step(f"{pm2.bin} restart {name}", _restarter(pm2, name)) for name in names])
    return Plan(report.verdict + " (waiting for it to clear: Apache may hold upstreams in error "
                "for its `retry` window)", [])


def _restarter(pm2: Pm2, name: str) -> Callable[[], proc.Result]:
    return lambda: pm2.restart(name)


@dataclass
class _Run:
    settings: Settings
    pm2: Pm2
    systemctl: systemd.Systemctl
    progress: Progress
    sleep: Sleep
    clock: Clock
    actions: list[Action] = field(default_factory=list)

    def health(self) -> HealthReport:
        return run_health(self.settings, remember=False, pm2=self.pm2)

    def act(self, step: Step) -> Action:
        note(self.progress, step.command)
        started = self.clock()
        try:
            result = step.run()
            ok, output = result.ok, result.output_tail
        except CommandError as error:
            ok, output = False, str(error)
        after = self.health()
        action = Action(step.command, ok, "done" if ok else "failed", output,
                        self.clock() - started, after.verdict)
        self.actions.append(action)
        return action

    def settled(self, deadline: float) -> tuple[HealthReport, list[str]]:
        """Re-check until the chain is healthy twice in a row with no new restarts (a crash
        loop looks online between crashes), or the deadline passes. Returns the last report
        and the apps whose restarts were still growing."""
        last = self.health()
        looping: list[str] = []
        while True:
            if not chain_broken(last):
                self.sleep(1.5)
                again = self.health()
                looping = growing(last, again)
                if not chain_broken(again) and not looping:
                    return again, []
                last = again
            if self.clock() >= deadline:
                return last, looping
            self.sleep(1.0)
            last = self.health()


def growing(first: HealthReport, second: HealthReport) -> list[str]:
    """Apps whose PM2 restart count grew between two reports: crash-looping while they look
    online."""
    before, after = _restarts(first), _restarts(second)
    return sorted(name.removeprefix("pm2:") for name, count in after.items()
                  if isinstance(count, int) and isinstance(before.get(name), int)
                  and count > before[name])  # type: ignore[operator]


def _restarts(report: HealthReport) -> dict[str, object]:
    return {c.name: c.observed.get("restarts") for c in report.checks
            if c.name.startswith("pm2:") and isinstance(c.observed, dict)}


def oom_evidence(settings: Settings, report: HealthReport) -> list[str]:
    notes: list[str] = []
    if "oom_kill" in _reasons(report, Layer.SUPERVISOR):
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


def recover(settings: Settings, *, dry_run: bool = False, progress: Progress = silent,
            sleep: Sleep = time.sleep, clock: Clock = time.monotonic) -> RecoverResult:
    started = clock()
    pm2 = gathering.health_pm2(settings)
    # Recovery commands may take longer than a health probe: resurrect starts four apps.
    pm2 = replace(pm2, timeout=settings.pm2.timeout_s)
    systemctl = systemd.Systemctl(settings.health.systemctl,
                                  timeout=max(settings.health.check_timeout_s, 30))
    run = _Run(settings, pm2, systemctl, progress, sleep, clock)
    before = run.health()
    looping: list[str] = []
    if not chain_broken(before):
        # One look cannot see a crash loop between crashes: look twice.
        sleep(1.5)
        again = run.health()
        looping = growing(before, again)
        before = again
    first = plan_recovery(before, settings, pm2, systemctl, looping)
    notes = oom_evidence(settings, before) if not first.healthy else []
    planned = [step.command for step in first.steps]
    for step in first.steps:
        guard(step.command.split())
    if first.healthy or first.refused or dry_run:
        actions = [Action(c, True, "planned") for c in planned] if dry_run else []
        return RecoverResult(first.diagnosis, first.healthy, dry_run, actions, notes, 0,
                             clock() - started, before, None if dry_run else before, planned)
    deadline = started + settings.health.recover_timeout_s
    attempts = settings.health.recover_attempts
    plan, report, attempt = first, before, 0
    for attempt in range(1, attempts + 1):
        for step in plan.steps:
            run.act(step)
        window = min(deadline, clock() + settings.health.recover_timeout_s / attempts)
        report, looping = run.settled(window)
        if not chain_broken(report) and not looping:
            return RecoverResult(first.diagnosis, True, False, run.actions, notes, attempt,
                                 clock() - started, before, report, planned)
        plan = plan_recovery(report, settings, pm2, systemctl, looping)
        if plan.refused or plan.healthy or attempt == attempts or clock() >= deadline:
            break
        backoff = settings.health.recover_backoff_s * 2 ** (attempt - 1)
        note(progress, f"not healed yet ({report.verdict}); next attempt in {backoff:g} s")
        sleep(backoff)
    still = f" ({', '.join(looping)} still restarting)" if looping else ""
    diagnosis = (f"{first.diagnosis} Not healed after {attempt} attempt(s): {report.verdict}"
                 f"{still}"
                 + (f" ({plan.diagnosis})" if plan.refused else ""))
    return RecoverResult(diagnosis, False, False, run.actions, notes, attempt,
                         clock() - started, before, report, planned)
