"""The one line health opens with: the first broken layer of the chain, its evidence, and what
to do. "First" is causal: the deepest broken layer of public URL → Apache → ports → PM2 apps →
PM2 supervisor → dump is where the outage starts; the layers above only show it.
"""

from __future__ import annotations

from vmkeeper.health.model import CHAIN, Check, Layer, Status, Verdict


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
        down = [c for c in bad if c.reason == "not_listening" or c.reason == "refused"]
        if down:
            return "Apache is not answering"
        public = next((c for c in checks if c.name == "http:public"), None)
        if public is not None and public.reason == "proxy_503":
            return "Apache answers 503"
        return "Apache answers"
    if layer is Layer.PORTS:
        quiet = [c for c in bad if c.reason == "not_listening"]
        foreign = [c for c in bad if c.reason == "foreign_owner"]
        parts = []
        if quiet:
            parts.append(f"nothing listens on {_names(quiet)}")
        parts.extend(c.summary for c in foreign)
        if not parts and bad:
            parts.extend(c.summary for c in bad)
        return "; ".join(parts) if parts else "the app ports listen"
    if layer is Layer.APPS:
        if any(c.reason == "daemon_down" for c in bad):
            return None  # the supervisor line says it once
        if bad:
            return "; ".join(c.summary for c in bad)
        return "all PM2 apps online"
    return bad[0].summary if bad else (mine[0].summary if layer is Layer.DUMP else None)


def _advice(root: Layer, checks: list[Check]) -> str:
    bad = [c for c in checks if c.layer is root and c.status is Status.CRITICAL]
    reasons = {c.reason for c in bad}
    if root is Layer.DUMP:
        return ("resurrecting from it would not bring the apps back: start the missing apps as "
                "the runbook says, then `pm2 save`")
    if root is Layer.SUPERVISOR:
        if "oom_kill" in reasons:
            return "run `vmkeeper diagnose oom --since -1h`, then `vmkeeper recover`"
        return "run `vmkeeper recover`"
    if root is Layer.APPS:
        looping = [c.name.removeprefix("pm2:") for c in bad if c.reason == "crash_loop"]
        if looping:
            return (f"read `vmkeeper logs {looping[0]}` for why it crashes, then "
                    "`vmkeeper recover`")
        return "run `vmkeeper recover`"
    if root is Layer.PORTS:
        foreign = [c for c in bad if c.reason == "foreign_owner"]
        if foreign:
            pid = foreign[0].details.get("pid")
            return (f"stop pid {pid}, which holds the app's port, then `vmkeeper recover` "
                    "(vmkeeper never kills a process it did not start)")
        return "the apps run but do not listen: read `vmkeeper logs`"
    if root is Layer.APACHE:
        return ("start Apache (`sudo systemctl start apache2`) and read its error log; "
                "vmkeeper does not change Apache")
    public = next((c for c in bad), None)
    if public is not None and public.reason == "proxy_503":
        return ("the upstreams answer again but Apache still holds them in error for `retry` "
                "seconds: wait a minute or reload Apache, and set retry=0")
    return "the VM answers locally: check DNS and Cloudflare"


def verdict(checks: list[Check]) -> Verdict:
    broken = [layer for layer in CHAIN
              if any(c.layer is layer and c.status is Status.CRITICAL for c in checks)]
    host_bad = [c for c in checks if c.layer in (Layer.HOST, Layer.RUNTIME)
                and c.status is Status.CRITICAL]
    if not broken:
        warned = [c for c in checks if c.status in (Status.WARN, Status.UNKNOWN)]
        if host_bad:
            return Verdict(Layer.HOST, "The chain answers, but the host is in trouble: "
                           + "; ".join(c.summary for c in host_bad), None)
        if warned:
            return Verdict(None, "Every layer answers; "
                           + "; ".join(f"{c.name}: {c.summary}" for c in warned), None)
        return Verdict(None, "Every layer answers: public URL, Apache, ports, PM2 apps, "
                       "supervisor and dump all healthy.", None)
    root = broken[-1]
    # A stranger on an app's port is the cause even when the app it displaced also shows down.
    if any(c.reason == "foreign_owner" for c in checks if c.status is Status.CRITICAL):
        root = Layer.PORTS
    evidence = [e for layer in CHAIN if (e := _evidence(checks, layer))]
    advice = _advice(root, checks)
    line = f"First broken layer: {root.value}. " + "; ".join(evidence) + f" → {advice}"
    if host_bad:
        line += ". Also: " + "; ".join(c.summary for c in host_bad)
    return Verdict(root, line, advice)
