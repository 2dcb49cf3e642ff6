"""The recovery plan: a pure function from the one Diagnosis (health/verdict.py) to the steps
that heal it, each carrying the argv that will run — and the guard on that argv.

The guard is the runbook's line ("Do not run executor commands blindly … Use PM2/systemd"):
recovery never runs git, a reset or clean, a shell, or the executor itself. It is checked when
a Step is made, so no plan — the first, a re-plan after a failed attempt, a dry run — can hold a
forbidden command, and what is checked is exactly what recover runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vmkeeper import proc
from vmkeeper.adapters import systemd
from vmkeeper.adapters.pm2 import restart_argv, resurrect_argv
from vmkeeper.errors import VmkeeperError
from vmkeeper.health.model import Cause, Check, Diagnosis, Layer
from vmkeeper.settings import Settings

_SHELLS = {"sh", "bash", "dash", "zsh", "fish", "ksh"}
_FORBIDDEN_VERBS = {"reset", "clean"}
_APACHE_DOWN = {Cause.NOT_LISTENING, Cause.REFUSED, Cause.TIMEOUT}


class ForbiddenCommand(VmkeeperError):
    pass


def guard(argv: tuple[str, ...] | list[str]) -> None:
    """Refuse git (also behind sudo/env), a reset or clean, a shell, or the executor's own
    script (restarting the fl-executor PM2 app is process recovery and stays allowed)."""
    names = [Path(arg).name for arg in argv]
    if (not names or names[0] in _SHELLS
            or any(name == "git" or name.startswith("git-") for name in names)
            or any(arg in _FORBIDDEN_VERBS for arg in argv[1:])
            or any(name.startswith("executor.") for name in names)):
        raise ForbiddenCommand(f"refusing to run `{proc.display(argv)}` during recovery.")


@dataclass(frozen=True)
class Step:
    """One command of a plan: exactly what runs (argv, its timeout, what env it adds)."""

    argv: tuple[str, ...]
    timeout: float
    env: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        guard(self.argv)

    @property
    def command(self) -> str:
        return proc.display(self.argv)


@dataclass(frozen=True)
class Plan:
    diagnosis: str
    steps: tuple[Step, ...] = ()
    refused: bool = False
    healthy: bool = False
    # First finish a switch a killed deploy or rollback left: the very repair they run before
    # every switch (releases/handover.py: Apache's map back to FRONT_PORT, the temporary app
    # removed, `pm2 save`). It runs in-process: it writes the map and runs only PM2.
    finish_switch: bool = False


FINISH_SWITCH = ("finish the switch a killed deploy left (route Apache to the frontend's port, "
                 "remove the temporary app, pm2 save)")


@dataclass(frozen=True)
class Tools:
    """The programs a plan names, from the settings: PM2, systemctl and PM2's unit."""

    pm2_bin: str
    pm2_home: Path
    pm2_timeout: float
    systemctl: str
    systemctl_timeout: float
    unit: str
    apps: Mapping[str, str]  # role -> PM2 app name
    error_log: Path

    @classmethod
    def from_settings(cls, settings: Settings) -> Tools:
        return cls(
            pm2_bin=settings.pm2.bin, pm2_home=settings.pm2.home,
            # Recovery commands get PM2's own timeout, not health's shorter one: a resurrect
            # starts four apps.
            pm2_timeout=settings.pm2.timeout_s, systemctl=settings.health.systemctl,
            systemctl_timeout=max(settings.health.check_timeout_s, 30), unit=settings.pm2.unit,
            apps={role: app.name for role, app in settings.app_roles().items()},
            error_log=settings.proxy.error_log,
        )

    def pm2(self, argv: list[str], timeout: float | None = None) -> Step:
        return Step(tuple(argv), timeout or self.pm2_timeout, {"PM2_HOME": str(self.pm2_home)})

    def restart(self, names: list[str]) -> tuple[Step, ...]:
        return tuple(self.pm2(restart_argv(self.pm2_bin, name)) for name in names)


def _app_name(check: Check) -> str:
    return check.name.removeprefix("pm2:")


def _restart_supervisor(d: Diagnosis, tools: Tools, why: str) -> Plan:
    if d.supervisor == "systemd":
        return Plan(why + f"; restarting the unit {tools.unit}.", (
            Step(tuple(systemd.reset_failed_argv(tools.systemctl, tools.unit)),
                 tools.systemctl_timeout),
            Step(tuple(systemd.restart_argv(tools.systemctl, tools.unit)),
                 tools.systemctl_timeout),
        ))
    # Resurrect starts four apps: it gets a minute even where one PM2 call gets less.
    return Plan(why + "; no systemd here, so `pm2 resurrect` from dump.pm2.",
                (tools.pm2(resurrect_argv(tools.pm2_bin), max(tools.pm2_timeout, 60)),))


def _dump(d: Diagnosis, tools: Tools) -> Plan:
    dump = d.broken_in(Layer.DUMP)[0]
    if d.broken_in(Layer.SUPERVISOR) or d.broken_in(Layer.APPS):
        return Plan(f"PM2 did not restore or was stopped, and {dump.summary}: refusing to "
                    "resurrect from it. Start the apps as the runbook says (frontend from the "
                    "active release with FRONT_PORT), check them, then `pm2 save`.",
                    refused=True)
    return Plan(f"{dump.summary}: a reboot would not bring the apps back. Once every app runs "
                "as it should, run `pm2 save` (vmkeeper does not rewrite the dump on its own).",
                refused=True)


def _supervisor(d: Diagnosis, tools: Tools) -> Plan:
    summary = d.broken_in(Layer.SUPERVISOR)[0].summary
    return _restart_supervisor(d, tools, f"{summary}: PM2 did not restore or was stopped")


def _wedged(d: Diagnosis, tools: Tools) -> list[str]:
    """Apps PM2 calls online whose port or probe is dead: restart them too."""
    roles = {str(c.details.get("role")) for c in d.broken_in(Layer.PORTS)}
    return [tools.apps[role] for role in sorted(roles) if role in tools.apps]


def _restarting(names: list[str], tools: Tools) -> Plan:
    verb = "is" if len(names) == 1 else "are"
    return Plan(f"PM2 is up but {', '.join(names)} {verb} not serving; restarting.",
                tools.restart(names))


def _apps(d: Diagnosis, tools: Tools) -> Plan:
    apps = d.broken_in(Layer.APPS)
    if d.cause is Cause.FLAPPING:  # seen restarting between two looks, online in each
        names = [_app_name(c) for c in apps]
        return Plan(f"{', '.join(names)} keeps restarting (crash loop) while PM2 shows it "
                    f"online; restarting it once more, then read `vmkeeper logs {names[0]}`.",
                    tools.restart(names))
    missing = [_app_name(c) for c in apps if c.reason is Cause.MISSING]
    quiet = {c.details.get("role") for c in d.broken_in(Layer.PORTS)
             if c.reason is Cause.NOT_LISTENING}
    if len(missing) >= 2 and {"frontend", "backend"} <= quiet:
        return _restart_supervisor(d, tools, "Apache is listening but the frontend and backend "
                                   "ports are not: PM2 did not restore or was stopped")
    if missing:
        return Plan(f"{', '.join(missing)} not in PM2's list: start it as the runbook says, "
                    "then `pm2 save` (a resurrect could duplicate the running apps).",
                    refused=True)
    names = [_app_name(c) for c in apps]
    return _restarting(names + [n for n in _wedged(d, tools) if n not in names], tools)


def _ports(d: Diagnosis, tools: Tools) -> Plan:
    if d.cause is Cause.ORPHANED:
        # PM2's own server, left behind (health judged: outside PM2's tree, in the app's folder,
        # its parent gone): stopped with SIGTERM as PM2 itself would, then the app restarted.
        left = [c for c in d.broken_in(Layer.PORTS) if c.reason is Cause.ORPHANED]
        stops = tuple(Step(("kill", "-TERM", str(c.details["pid"])), 10) for c in left)
        names = sorted({str(c.details["app"]) for c in left})
        return Plan(d.line, stops + tools.restart(names))
    if d.cause is Cause.FOREIGN_OWNER:
        foreign = [c for c in d.broken_in(Layer.PORTS) if c.reason is Cause.FOREIGN_OWNER]
        return Plan("; ".join(c.summary for c in foreign) + ": stop that process (vmkeeper "
                    "never kills what it did not start), then run `vmkeeper recover` again.",
                    refused=True)
    names = _wedged(d, tools)
    return _restarting(names, tools) if names else _waiting(d, tools)


def _apache(d: Diagnosis, tools: Tools) -> Plan:
    if d.cause is Cause.MISROUTED:
        return Plan(d.line, finish_switch=True)
    if d.cause in _APACHE_DOWN:
        return Plan("Apache itself is down: start it (`sudo systemctl start apache2`) and read "
                    f"{tools.error_log}; vmkeeper does not change Apache.", refused=True)
    return _waiting(d, tools)


def _waiting(d: Diagnosis, _tools: Tools) -> Plan:
    return Plan(d.line + " (waiting for it to clear: Apache may hold upstreams in error for "
                "its `retry` window)")


_PLANNERS: dict[Layer, Callable[[Diagnosis, Tools], Plan]] = {
    Layer.DUMP: _dump, Layer.SUPERVISOR: _supervisor, Layer.APPS: _apps, Layer.PORTS: _ports,
    Layer.APACHE: _apache, Layer.PUBLIC: _waiting,
}


def plan_recovery(diagnosis: Diagnosis, tools: Tools) -> Plan:
    """What to do about ``diagnosis``: steps to run, a refusal with the reason, or nothing."""
    planner = _PLANNERS.get(diagnosis.layer) if diagnosis.layer is not None else None
    if planner is None:  # the chain answers (host trouble is not recovery's to fix)
        return Plan(f"healthy: nothing to do ({diagnosis.line})", healthy=True)
    return planner(diagnosis, tools)
