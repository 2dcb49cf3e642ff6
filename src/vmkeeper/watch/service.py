"""The watcher built from the settings: health's look, the one recover, the deploy lock's
holder as the maintenance window, evidence on open, the Prometheus textfile each cycle."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from vmkeeper import telemetry
from vmkeeper.flock import live_holder
from vmkeeper.health import facts as gathering
from vmkeeper.health.model import HealthReport
from vmkeeper.health.service import observe
from vmkeeper.health.verdict import diagnose
from vmkeeper.recover_plan import Tools, plan_recovery
from vmkeeper.releases.lock import LOCK_NAME
from vmkeeper.settings import Settings
from vmkeeper.telemetry import record
from vmkeeper.watch.alerts import sinks
from vmkeeper.watch.evidence import capture
from vmkeeper.watch.loop import Alert, Attempt, Notify, Observation, Watcher
from vmkeeper.watch.pressure import read_pressure
from vmkeeper.watch.state import Look
from vmkeeper.watch.store import Incident, Store
from vmkeeper.watch.textfile import write_textfile

log = logging.getLogger(__name__)


def store_of(settings: Settings) -> Store:
    return Store(settings.state_dir / "watch")


def in_maintenance(settings: Settings, now: float) -> bool:
    """A live deploy or rollback holds the lock, for less than watch.deploy_timeout_s (one
    that outlives it is an incident like any other)."""
    holder = live_holder(settings.releases.root / LOCK_NAME)  # not the name a -9 left
    if holder is None:
        return False
    try:
        since = datetime.fromisoformat(holder.since.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return True
    return now - since < settings.watch.deploy_timeout_s


# One health look: given the heavy facts to carry (or None: gather them), the facts and report.
HealthLook = Callable[["gathering.Facts | None"], tuple["gathering.Facts", HealthReport]]


class Looker:
    """Health's look each cycle; keeps the last report for the textfile and the evidence.

    Cheap checks (HTTP, ports, PM2) run every cycle; the heavy facts (disk, the dump, Node,
    Apache's config: facts.HEAVY) and the memory-pressure warning every watch.heavy_every
    cycles or watch.heavy_every_s seconds, whichever comes first, and their last result is
    carried into the cycles between. A cycle whose cheap look finds the chain broken looks
    again in full at once: no incident opens, and no plan is made, on carried facts."""

    def __init__(self, settings: Settings, look: HealthLook | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.settings = settings
        self.pm2 = gathering.health_pm2(settings)
        self.tools = Tools.from_settings(settings)
        self._look = look or (lambda carried: observe(settings, pm2=self.pm2, carried=carried))
        self.clock = clock
        self.last: HealthReport | None = None
        self.facts: gathering.Facts | None = None
        self.since_heavy = 0  # cycles since the heavy facts were last gathered
        self.heavy_at = 0.0
        self.exported: tuple[str, str] | None = None  # (status, verdict) last pushed at once
        # The telemetry families carried in the textfile, and when they were rendered.
        self.families: str | None = None
        self.families_at = 0.0

    def heavy_due(self, now: float) -> bool:
        """Due by count or by time; and while the chain stays broken (an outage's cycles look
        in full at once, not cheaply first and then again)."""
        from vmkeeper.recover import chain_broken

        rules = self.settings.watch
        return (self.facts is None or self.since_heavy >= rules.heavy_every
                or (rules.heavy_every_s is not None and now - self.heavy_at >= rules.heavy_every_s)
                or (self.last is not None and bool(chain_broken(self.last))))

    def __call__(self) -> Observation:
        from vmkeeper.recover import chain_broken

        now = self.clock()
        heavy = self.heavy_due(now)
        with telemetry.span("vmkeeper watch cycle"):  # one trace per look, its commands below
            facts, report = self._look(None if heavy else self.facts)
            if not heavy and chain_broken(report):
                heavy = True
                facts, report = self._look(None)
        if heavy:
            self.since_heavy, self.heavy_at = 0, now
            self._warn_pressure()
        self.since_heavy += 1
        self.facts, self.last = facts, report
        changed = (report.status.value, report.verdict) != self.exported
        # The telemetry families in the textfile, like the export, follow the exporter's period
        # or a change; health's own figures and every check's last success are this cycle's.
        render = changed or now - self.families_at >= self.settings.telemetry.metric_interval_s
        if render:
            self.families_at = now
        self.families = write_textfile(self.settings, report, now, heavy_at=self.heavy_at,
                                       families=None if render else self.families)
        if changed:
            # A change reaches the collector within its cycle (in the background); a steady
            # VM's figures go out at the exporter's own period (telemetry.metric_interval_s),
            # not at every cycle: each export is a collection and a protobuf of every family.
            telemetry.export_soon()
            self.exported = (report.status.value, report.verdict)
        plan = plan_recovery(diagnose(report.checks, report.supervisor), self.tools)
        look = Look(healthy=not chain_broken(report), actionable=not plan.refused,
                    maintenance=in_maintenance(self.settings, now))
        return Observation(look, report.verdict)

    def _warn_pressure(self) -> None:
        """The OOM early warning: logged before the kernel's OOM killer acts (the media
        service refuses new jobs meanwhile on its own reading, media/jobqueue.py)."""
        pressure = read_pressure(self.settings.watch)
        record.pressure(pressure)
        if pressure.high:
            log.warning("memory pressure high: %s", pressure.line)


def _recoverer(settings: Settings) -> Attempt:
    from vmkeeper.progress import silent
    from vmkeeper.recover import recover

    with telemetry.span("vmkeeper recover", **{"vmkeeper.operation": "recover"}):
        result = recover(settings, progress=telemetry.steps(silent))
    steps = [{"command": a.command, "ok": a.ok, "outcome": a.outcome, "recheck": a.recheck}
             for a in result.actions]
    return Attempt(result.ok, result.diagnosis, steps)


def build_watcher(settings: Settings) -> Watcher:
    looker = Looker(settings)
    store = store_of(settings)

    def evidence(incident: Incident) -> list[str]:
        return capture(settings, incident, looker.last, store.folder)

    notify = _counted(store, sinks(settings))
    return Watcher(settings.watch, store, looker, lambda: _recoverer(settings), notify,
                   evidence)


def _counted(store: Store, notify: Notify) -> Notify:
    """The alerts, also as telemetry: incidents open now, time to recover, the record."""
    def both(alert: Alert) -> None:
        opened = sum(1 for found in store.incidents() if found.state != "resolved")
        record.incident(alert.kind, alert.incident, opened)
        notify(alert)

    if telemetry.active() is not None:
        record.incidents_open(sum(1 for found in store.incidents() if found.state != "resolved"))
    return both


def incidents(settings: Settings) -> list[Incident]:
    return store_of(settings).incidents()


def incident_folder(store_folder: Path, incident: Incident) -> Path:
    return store_folder / "evidence" / incident.id
