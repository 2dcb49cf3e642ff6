"""The one diagnosis of the chain: the first broken layer, its cause, the evidence, what to do.

"First" is causal: the deepest broken layer of public URL → Apache → ports → PM2 apps → PM2
supervisor → dump is where the outage starts; the layers above only show it. Health prints this
diagnosis; recover plans from the very same value (recover_plan.py), so the two never disagree.
"""

from __future__ import annotations

from vmkeeper.health.model import CHAIN, Cause, Check, Diagnosis, Layer, Status

_APACHE_DOWN = {Cause.NOT_LISTENING, Cause.REFUSED, Cause.TIMEOUT}


def _names(checks: list[Check]) -> str:
    return " or ".join(str(c.details.get("port", c.name)) for c in checks)


def _evidence(checks: list[Check], layer: Layer) -> str | None:
    mine = [c for c in checks if c.layer is layer]
    bad = [c for c in mine if c.status is Status.CRITICAL]
    if not mine:
        return None
    if layer is Layer.PUBLIC:
        return bad[0].summary if bad else "the site answers"
    if layer is Layer.APACHE:
        if any(c.reason in (Cause.NOT_LISTENING, Cause.REFUSED) for c in bad):
            return "Apache is not answering"
        misrouted = [c for c in bad if c.reason is Cause.MISROUTED]
        if misrouted:
            return misrouted[0].summary
        public = next((c for c in checks if c.name == "http:public"), None)
        if public is not None and public.reason is Cause.PROXY_503:
            return "Apache answers 503"
        return "Apache answers"
    if layer is Layer.PORTS:
        quiet = [c for c in bad if c.reason is Cause.NOT_LISTENING]
        parts = [f"nothing listens on {_names(quiet)}"] if quiet else []
        parts.extend(c.summary for c in bad
                     if c.reason in (Cause.FOREIGN_OWNER, Cause.ORPHANED))
        if not parts and bad:
            parts.extend(c.summary for c in bad)
        return "; ".join(parts) if parts else "the app ports listen"
    if layer is Layer.APPS:
        if any(c.reason is Cause.DAEMON_DOWN for c in bad):
            return None  # the supervisor line says it once
        if bad:
            return "; ".join(c.summary for c in bad)
        return "all PM2 apps online"
    return bad[0].summary if bad else (mine[0].summary if layer is Layer.DUMP else None)


def _advice(root: Layer, cause: Cause | None, bad: list[Check]) -> str:
    if root is Layer.DUMP:
        return ("resurrecting from it would not bring the apps back: start the missing apps as "
                "the runbook says, then `pm2 save`")
    if root is Layer.SUPERVISOR:
        if cause is Cause.OOM_KILL:
            return "run `vmkeeper diagnose oom --since -1h`, then `vmkeeper recover`"
        return "run `vmkeeper recover`"
    if root is Layer.APPS:
        looping = [c.name.removeprefix("pm2:") for c in bad if c.reason is Cause.CRASH_LOOP]
        if looping:
            return (f"read `vmkeeper logs {looping[0]}` for why it crashes, then "
                    "`vmkeeper recover`")
        return "run `vmkeeper recover`"
    if root is Layer.PORTS:
        if cause is Cause.ORPHANED:
            found = next(c for c in bad if c.reason is Cause.ORPHANED).details
            return (f"run `vmkeeper recover`: it stops pid {found.get('pid')}, the server "
                    f"{found.get('app')}'s killed wrapper left behind, and restarts the app")
        if cause is Cause.FOREIGN_OWNER:
            pid = next(c for c in bad if c.reason is Cause.FOREIGN_OWNER).details.get("pid")
            return (f"stop pid {pid}, which holds the app's port, then `vmkeeper recover` "
                    "(vmkeeper never kills a process it did not start)")
        return "the apps run but do not listen: read `vmkeeper logs`"
    if root is Layer.APACHE and cause in _APACHE_DOWN:
        return ("start Apache (`sudo systemctl start apache2`) and read its error log; "
                "vmkeeper does not change Apache")
    if cause is Cause.MISROUTED:
        return ("run `vmkeeper recover`: it routes Apache back to the frontend's port, as the "
                "next deploy or rollback would")
    if cause is Cause.PROXY_503:
        return ("the upstreams answer again but Apache still holds them in error for `retry` "
                "seconds: wait a minute or reload Apache, and set retry=0")
    if root is Layer.APACHE:
        return "Apache answers, but not as the site expects: read its error log"
    return "the VM answers locally: check DNS and Cloudflare"


def _healthy(checks: list[Check], host_bad: list[Check], supervisor: str) -> Diagnosis:
    warned = [c for c in checks if c.status in (Status.WARN, Status.UNKNOWN)]
    if host_bad:
        line = ("The chain answers, but the host is in trouble: "
                + "; ".join(c.summary for c in host_bad))
        return Diagnosis(Layer.HOST, min((c.reason for c in host_bad if c.reason),
                                         key=lambda c: c.rank, default=None),
                         (), None, line, (), supervisor)
    if warned:
        line = "Every layer answers; " + "; ".join(f"{c.name}: {c.summary}" for c in warned)
    else:
        line = ("Every layer answers: public URL, Apache, ports, PM2 apps, supervisor and dump "
                "all healthy.")
    return Diagnosis(None, None, (), None, line, (), supervisor)


def diagnose(checks: list[Check], supervisor: str = "pm2") -> Diagnosis:
    """The chain's one diagnosis from judged checks (pure)."""
    broken = tuple(c for c in checks if c.layer in CHAIN and c.status is Status.CRITICAL)
    host_bad = [c for c in checks if c.layer in (Layer.HOST, Layer.RUNTIME)
                and c.status is Status.CRITICAL]
    if not broken:
        return _healthy(checks, host_bad, supervisor)
    root = [layer for layer in CHAIN if any(c.layer is layer for c in broken)][-1]
    # A stranger on an app's port is the cause even when the app it displaced also shows down.
    if any(c.reason in (Cause.FOREIGN_OWNER, Cause.ORPHANED) for c in broken):
        root = Layer.PORTS
    bad = [c for c in broken if c.layer is root]
    cause = min((c.reason for c in bad if c.reason), key=lambda c: c.rank, default=None)
    evidence = tuple(e for layer in CHAIN if (e := _evidence(checks, layer)))
    advice = _advice(root, cause, bad)
    line = f"First broken layer: {root.value}. " + "; ".join(evidence) + f" → {advice}"
    if host_bad:
        line += ". Also: " + "; ".join(c.summary for c in host_bad)
    return Diagnosis(root, cause, evidence, advice, line, broken, supervisor)
