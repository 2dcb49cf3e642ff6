"""plan_recovery as a pure function, one row per cause it can meet; the guard on argv."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmkeeper.health.model import Cause, Check, Diagnosis, Layer, Status
from vmkeeper.recover_plan import ForbiddenCommand, Plan, Step, Tools, guard, plan_recovery

TOOLS = Tools(pm2_bin="/opt/pm2/bin/pm2", pm2_home=Path("/home/ubuntu/.pm2"), pm2_timeout=30,
              systemctl="systemctl", systemctl_timeout=30, unit="pm2-ubuntu",
              apps={"frontend": "frontend-dev", "backend": "backend-dev",
                    "telemetry": "fl-telemetry", "executor": "fl-executor"},
              error_log=Path("/var/log/apache2/error.log"))
PM2 = TOOLS.pm2_bin
RESURRECT = [[PM2, "resurrect"]]
UNIT = [["systemctl", "reset-failed", "pm2-ubuntu.service"],
        ["systemctl", "restart", "pm2-ubuntu.service"]]


def restart(*names: str) -> list[list[str]]:
    return [[PM2, "restart", name, "--update-env"] for name in names]


def check(name: str, layer: Layer, cause: Cause, **details: object) -> Check:
    return Check(name, Status.CRITICAL, f"{name} is broken ({cause.value})", layer=layer,
                 reason=cause, details=dict(details))


def app(name: str, cause: Cause) -> Check:
    return check(f"pm2:{name}", Layer.APPS, cause)


def port(role: str, cause: Cause = Cause.NOT_LISTENING, **details: object) -> Check:
    return check(f"port:{role}", Layer.PORTS, cause, role=role, **details)


def diagnosis(layer: Layer | None, cause: Cause | None, *broken: Check,
              supervisor: str = "pm2") -> Diagnosis:
    return Diagnosis(layer, cause, (), None, f"line for {cause}", tuple(broken), supervisor)


SUPERVISOR_DOWN = check("supervisor", Layer.SUPERVISOR, Cause.DAEMON_DOWN)
DUMP_EMPTY = check("dump", Layer.DUMP, Cause.DUMP_EMPTY)
LOST = (app("frontend-dev", Cause.MISSING), app("backend-dev", Cause.MISSING),
        port("frontend"), port("backend"))

# (case, diagnosis, what the plan does: "act" | "wait" | "refuse" | "healthy", argv, words)
TABLE: list[tuple[str, Diagnosis, str, list[list[str]], str]] = [
    ("healthy", diagnosis(None, None), "healthy", [], "healthy: nothing to do"),
    ("host trouble only", diagnosis(Layer.HOST, None), "healthy", [], "nothing to do"),
    ("dump missing, PM2 down", diagnosis(Layer.DUMP, Cause.DUMP_MISSING, SUPERVISOR_DOWN,
                                         check("dump", Layer.DUMP, Cause.DUMP_MISSING)),
     "refuse", [], "refusing to resurrect"),
    ("dump bad, PM2 down", diagnosis(Layer.DUMP, Cause.DUMP_BAD, SUPERVISOR_DOWN,
                                     check("dump", Layer.DUMP, Cause.DUMP_BAD)),
     "refuse", [], "refusing to resurrect"),
    ("dump empty, PM2 down", diagnosis(Layer.DUMP, Cause.DUMP_EMPTY, SUPERVISOR_DOWN,
                                       DUMP_EMPTY), "refuse", [], "refusing to resurrect"),
    ("dump incomplete, apps up", diagnosis(Layer.DUMP, Cause.DUMP_INCOMPLETE,
                                           check("dump", Layer.DUMP, Cause.DUMP_INCOMPLETE)),
     "refuse", [], "run `pm2 save`"),
    ("daemon down", diagnosis(Layer.SUPERVISOR, Cause.DAEMON_DOWN, SUPERVISOR_DOWN),
     "act", RESURRECT, "`pm2 resurrect` from dump.pm2"),
    ("daemon down under systemd", diagnosis(Layer.SUPERVISOR, Cause.DAEMON_DOWN,
                                            SUPERVISOR_DOWN, supervisor="systemd"),
     "act", UNIT, "restarting the unit pm2-ubuntu"),
    ("unit OOM-killed", diagnosis(Layer.SUPERVISOR, Cause.OOM_KILL, check(
        "supervisor", Layer.SUPERVISOR, Cause.OOM_KILL), supervisor="systemd"),
     "act", UNIT, "PM2 did not restore"),
    ("unit start limit hit", diagnosis(Layer.SUPERVISOR, Cause.START_LIMIT_HIT, check(
        "supervisor", Layer.SUPERVISOR, Cause.START_LIMIT_HIT), supervisor="systemd"),
     "act", UNIT, "restarting the unit"),
    ("unit down", diagnosis(Layer.SUPERVISOR, Cause.UNIT_DOWN, check(
        "supervisor", Layer.SUPERVISOR, Cause.UNIT_DOWN), supervisor="systemd"),
     "act", UNIT, "restarting the unit"),
    ("unit missing", diagnosis(Layer.SUPERVISOR, Cause.UNIT_MISSING, check(
        "supervisor", Layer.SUPERVISOR, Cause.UNIT_MISSING), supervisor="systemd"),
     "act", UNIT, "restarting the unit"),
    ("PM2 up but lost its apps", diagnosis(Layer.APPS, Cause.MISSING, *LOST),
     "act", RESURRECT, "frontend and backend ports are not"),
    ("one app missing", diagnosis(Layer.APPS, Cause.MISSING, app("fl-executor", Cause.MISSING)),
     "refuse", [], "fl-executor not in PM2's list"),
    ("one app stopped", diagnosis(Layer.APPS, Cause.STOPPED, app("backend-dev", Cause.STOPPED),
                                  port("backend")),
     "act", restart("backend-dev"), "backend-dev is not serving"),
    ("an app crash-looping", diagnosis(Layer.APPS, Cause.CRASH_LOOP,
                                       app("fl-executor", Cause.CRASH_LOOP)),
     "act", restart("fl-executor"), "PM2 is up but fl-executor"),
    ("restarting between looks", diagnosis(Layer.APPS, Cause.FLAPPING,
                                           app("fl-telemetry", Cause.FLAPPING)),
     "act", restart("fl-telemetry"), "keeps restarting (crash loop)"),
    ("apps down with the daemon", diagnosis(Layer.APPS, Cause.DAEMON_DOWN,
                                            app("frontend-dev", Cause.DAEMON_DOWN)),
     "act", restart("frontend-dev"), "restarting"),
    ("stranger on a port", diagnosis(Layer.PORTS, Cause.FOREIGN_OWNER, port(
        "backend", Cause.FOREIGN_OWNER, pid=777), app("backend-dev", Cause.STOPPED)),
     "refuse", [], "stop that process"),
    ("an app's own left-behind server on its port", diagnosis(Layer.PORTS, Cause.ORPHANED, port(
        "backend", Cause.ORPHANED, pid=778, app="backend-dev")),
     "act", [["kill", "-TERM", "778"], *restart("backend-dev")], ""),
    ("app online, port dead", diagnosis(Layer.PORTS, Cause.NOT_LISTENING, port("frontend")),
     "act", restart("frontend-dev"), "frontend-dev is not serving"),
    ("probe refused", diagnosis(Layer.PORTS, Cause.REFUSED, port("backend", Cause.REFUSED)),
     "act", restart("backend-dev"), "restarting"),
    ("probe timeout", diagnosis(Layer.PORTS, Cause.TIMEOUT, port("frontend", Cause.TIMEOUT)),
     "act", restart("frontend-dev"), "restarting"),
    ("probe wrong status", diagnosis(Layer.PORTS, Cause.STATUS, port("frontend", Cause.STATUS)),
     "act", restart("frontend-dev"), "restarting"),
    ("probe error", diagnosis(Layer.PORTS, Cause.HTTP_ERROR, port("proxy", Cause.HTTP_ERROR)),
     "wait", [], "waiting for it to clear"),
    ("probe dns", diagnosis(Layer.PORTS, Cause.DNS, port("proxy", Cause.DNS)),
     "wait", [], "waiting"),
    ("Apache not listening", diagnosis(Layer.APACHE, Cause.NOT_LISTENING, check(
        "port:80", Layer.APACHE, Cause.NOT_LISTENING)), "refuse", [], "Apache itself is down"),
    ("Apache refuses", diagnosis(Layer.APACHE, Cause.REFUSED, check(
        "http:proxy", Layer.APACHE, Cause.REFUSED)), "refuse", [], "Apache itself is down"),
    ("Apache times out", diagnosis(Layer.APACHE, Cause.TIMEOUT, check(
        "http:proxy", Layer.APACHE, Cause.TIMEOUT)), "refuse", [], "Apache itself is down"),
    ("Apache holds a 503", diagnosis(Layer.APACHE, Cause.PROXY_503, check(
        "http:proxy", Layer.APACHE, Cause.PROXY_503)), "wait", [], "`retry` window"),
    ("a killed switch left Apache on the spare port", diagnosis(Layer.APACHE, Cause.MISROUTED,
        check("proxy:route", Layer.APACHE, Cause.MISROUTED)), "finish", [], ""),
    ("public URL 503", diagnosis(Layer.PUBLIC, Cause.PROXY_503, check(
        "http:public", Layer.PUBLIC, Cause.PROXY_503)), "wait", [], "waiting for it to clear"),
]
# Causes that never make a layer of the chain critical (warnings, unknowns, the host).
NEVER_A_ROOT = {Cause.DUMP_STALE, Cause.UNEXPECTED, Cause.STICKY_RETRY, Cause.NO_PROXYPASS,
                Cause.NODE_MISMATCH, Cause.UNAVAILABLE,
                Cause.NO_SWITCH_SNIPPET}  # doctor warnings: never the cause of an outage


def kind(plan: Plan) -> str:
    if plan.healthy:
        return "healthy"
    if plan.refused:
        return "refuse"
    if plan.finish_switch:
        return "finish"
    return "act" if plan.steps else "wait"


@pytest.mark.parametrize(("case", "found", "expected", "argv", "words"), TABLE,
                         ids=[row[0] for row in TABLE])
def test_plan_recovery(case: str, found: Diagnosis, expected: str, argv: list[list[str]],
                       words: str) -> None:
    plan = plan_recovery(found, TOOLS)
    assert kind(plan) == expected
    assert [list(step.argv) for step in plan.steps] == argv
    assert words in plan.diagnosis
    assert plan_recovery(found, TOOLS) == plan  # pure: the same diagnosis, the same plan


def test_the_table_meets_every_cause() -> None:
    met = {row[1].cause for row in TABLE} | {c.reason for row in TABLE for c in row[1].broken}
    assert set(Cause) - NEVER_A_ROOT <= met


def test_pm2_steps_carry_pm2_home_and_resurrect_gets_a_minute() -> None:
    [step] = plan_recovery(diagnosis(Layer.SUPERVISOR, Cause.DAEMON_DOWN, SUPERVISOR_DOWN),
                           TOOLS).steps
    assert step.env == {"PM2_HOME": "/home/ubuntu/.pm2"} and step.timeout == 60
    assert step.command == f"{PM2} resurrect"


@pytest.mark.parametrize("argv", [
    ["git", "reset", "--hard"], ["/usr/bin/git", "clean", "-fdx"], ["sudo", "git", "pull"],
    ["env", "GIT_DIR=x", "git", "status"], ["git-upload-pack", "."],
    [PM2, "reset", "fl-executor"], ["npm", "run", "clean"],
    ["node", "/home/ubuntu/executor/executor.js"], [PM2, "start", "executor.js"],
    ["sh", "-c", "pm2 restart all"], ["/bin/bash", "-c", "true"], [],
])
def test_the_guard_refuses_what_the_runbook_forbids(argv: list[str]) -> None:
    with pytest.raises(ForbiddenCommand):
        guard(argv)
    if argv:
        with pytest.raises(ForbiddenCommand):
            Step(tuple(argv), 10)  # no plan can even hold it


@pytest.mark.parametrize("argv", [
    [PM2, "restart", "fl-executor", "--update-env"], [PM2, "resurrect"],
    ["systemctl", "reset-failed", "pm2-ubuntu.service"],
    ["systemctl", "restart", "pm2-ubuntu.service"],
])
def test_the_guard_lets_process_recovery_through(argv: list[str]) -> None:
    guard(argv)
    assert Step(tuple(argv), 10).command == " ".join(argv)
