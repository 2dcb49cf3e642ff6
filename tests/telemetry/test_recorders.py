"""The families recorded where their values are known, in the fast tier: health's gather (each
check, each HTTP probe by target, each PM2 app), the watcher's alerts and textfile, memory
pressure, the media queue's job log. Read back as the Prometheus text `GET /metrics` serves."""

from __future__ import annotations

import re
import threading
from pathlib import Path

from tests.fakes.world import FakeVm
from tests.media_service.fakes import REJECTED, scripted_queue
from tests.media_service.helpers import settings_for
from tests.support import otlp
from tests.support.clock import FakeClock
from tests.support.waiting import wait_for
from vmkeeper import telemetry
from vmkeeper.health.facts import Facts
from vmkeeper.health.model import HealthReport
from vmkeeper.health.service import run_health
from vmkeeper.settings import Settings
from vmkeeper.telemetry import record
from vmkeeper.watch.loop import Alert
from vmkeeper.watch.pressure import Pressure
from vmkeeper.watch.service import Looker, _counted
from vmkeeper.watch.store import Incident, Store
from vmkeeper.watch.textfile import write_textfile

OFF_LINE = "http://127.0.0.1:9"  # nothing listens: the text is what we read here


def _on(settings: Settings, endpoint: str = OFF_LINE) -> Settings:
    settings = settings.model_copy(update={"telemetry": settings.telemetry.model_copy(
        update={"otlp_endpoint": endpoint})})
    assert telemetry.setup(settings, "vmkeeper-test") is not None
    return settings


def _series(text: str, name: str) -> dict[str, float]:
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            labels, _, value = line.rpartition(" ")
            found[labels[len(name):]] = float(value)
    return found


def test_health_records_each_check_probe_target_and_pm2_app(tmp_path: Path) -> None:
    vm = FakeVm.at(tmp_path)
    vm.run_other_apps()
    settings = _on(vm.settings)
    report = run_health(settings, remember=False, pm2=vm.pm2)
    text = telemetry.prometheus_text()
    checks = _series(text, "vmkeeper_health_check_status")
    assert len(checks) == len(report.checks)
    assert all('check="' in labels and 'layer="' in labels for labels in checks)
    probes = _series(text, "http_client_request_duration_seconds_count")
    targets = {re.search(r'vmkeeper_target="([^"]+)"', k).group(1) for k in probes}
    assert targets == set(report_targets(settings)), probes
    apps = _series(text, "vmkeeper_pm2_app_up")
    assert apps == {'{app="backend-dev"}': 1, '{app="fl-telemetry"}': 1, '{app="fl-executor"}': 1}
    assert set(_series(text, "process_memory_usage_bytes")) == set(apps)
    assert set(_series(text, "process_cpu_utilization_ratio")) == set(apps)
    assert _series(text, "vmkeeper_pm2_app_restarts")['{app="backend-dev"}'] == 0


def report_targets(settings: Settings) -> list[str]:
    from vmkeeper.health.facts import probe_urls

    return list(probe_urls(settings))


def test_the_watchers_alerts_count_incidents_and_time_to_recover_and_log_them(
        tmp_path: Path, collector) -> None:
    url, received = collector
    _on(Settings.model_validate({}), url)
    store = Store(tmp_path / "watch")
    alerts: list[Alert] = []
    notify = _counted(store, alerts.append)
    opened = Incident("1-1", "open", 1000.0, "the proxy answers 503: frontend-dev is down")
    store.save(opened)
    notify(Alert("open", opened))
    assert _series(telemetry.prometheus_text(), "vmkeeper_incidents_open") == {"": 1}
    resolved = store.update("1-1", state="resolved", resolved_at=1042.0, seconds_to_recover=42.0)
    assert resolved is not None
    notify(Alert("resolved", resolved))
    text = telemetry.prometheus_text()
    assert _series(text, "vmkeeper_incidents_open") == {"": 0}
    assert _series(text, "vmkeeper_incident_recovery_duration_seconds_sum") == {"": 42}
    assert [a.kind for a in alerts] == ["open", "resolved"]  # the sinks still get them
    telemetry.shutdown()
    records = [r for r in received.logs() if r.event_name == "vmkeeper.incident"]
    assert [otlp.attributes(r)["vmkeeper.alert"] for r in records] == ["open", "resolved"]
    assert "frontend-dev is down" in records[0].body.string_value


def test_memory_pressure_is_psis_avg10_as_a_ratio_and_meminfo_is_not_sent() -> None:
    _on(Settings.model_validate({}))
    record.pressure(Pressure("meminfo", 80.0, False, "80% available"))
    assert _series(telemetry.prometheus_text(), "vmkeeper_memory_pressure_ratio") == {}
    record.pressure(Pressure("psi", 12.5, False, "memory pressure 12.5%"))
    assert _series(telemetry.prometheus_text(), "vmkeeper_memory_pressure_ratio") == {"": 0.125}


def test_the_watchers_textfile_carries_the_families_once_each(tmp_path: Path) -> None:
    vm = FakeVm.at(tmp_path)
    vm.run_other_apps()
    settings = _on(vm.settings.model_copy(update={"watch": vm.settings.watch.model_copy(
        update={"textfile": tmp_path / "textfile" / "vmkeeper.prom"})}))
    report = run_health(settings, remember=False, pm2=vm.pm2)
    write_textfile(settings, report, 1_800_000_000.0)
    text = (tmp_path / "textfile" / "vmkeeper.prom").read_text()
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types)), sorted(types)  # one family, one TYPE: a valid file
    for name in ("vmkeeper_health_status", "vmkeeper_last_success_timestamp_seconds",
                 "http_client_request_duration_seconds", "vmkeeper_pm2_app_up", "target_info"):
        assert name in types, name


def test_the_media_queue_records_jobs_rejections_depth_and_breaker(tmp_path: Path) -> None:
    settings = _on(settings_for(tmp_path))
    for name in ("a.mp4", "b.mp4", "long.mp4"):
        (tmp_path / "uploads" / name).write_bytes(b"video")
    queue, executor, _ = scripted_queue(settings)
    executor.outcomes["long.mp4"] = REJECTED
    for name in ("a.mp4", "b.mp4", "long.mp4"):
        queue.submit(name)
    assert _series(telemetry.prometheus_text(), "vmkeeper_media_queue_depth") == {"": 3}
    while queue.runner.run_once():
        pass
    text = telemetry.prometheus_text()
    assert _series(text, "vmkeeper_media_job_duration_seconds_count") == {
        '{vmkeeper_result="done"}': 2, '{vmkeeper_result="rejected"}': 1}
    assert _series(text, "vmkeeper_media_rejected_total") == {'{vmkeeper_reason="rejected"}': 1}
    assert _series(text, "vmkeeper_media_queue_depth") == {"": 0}
    assert _series(text, "vmkeeper_media_breaker_state") == {"": 0}


def test_a_cycles_export_reaches_the_collector_without_a_flush(collector) -> None:
    url, received = collector
    _on(Settings.model_validate({}), url)
    record.incidents_open(2)
    telemetry.export_soon()
    wait_for(lambda: "vmkeeper.incidents.open" in received.metric_names(), 10,
             "the cycle's metrics at the collector")


def test_a_silent_collector_never_holds_up_a_cycle_and_exports_do_not_pile_up() -> None:
    import time

    servers = otlp.serve("hang")
    url, _ = next(servers)
    try:
        handle = telemetry.setup(Settings.model_validate({"telemetry": {
            "otlp_endpoint": url, "export_timeout_s": 5}}), "vmkeeper-watch")
        assert handle is not None
        threads = threading.active_count()
        started = time.monotonic()
        for _ in range(20):
            telemetry.export_soon()
        assert time.monotonic() - started < 0.5
        # The first is stuck on the silent collector; the other nineteen skipped.
        assert handle._exporting.locked() and threading.active_count() - threads <= 1
    finally:
        servers.close()


def test_the_watcher_renders_the_textfile_families_at_the_exporters_period(
        tmp_path: Path) -> None:
    vm = FakeVm.at(tmp_path)
    vm.run_other_apps()
    prom = tmp_path / "vmkeeper.prom"
    settings = _on(vm.settings.model_copy(update={"watch": vm.settings.watch.model_copy(
        update={"textfile": prom, "interval_s": 5})}))
    clock = FakeClock()

    def look(_carried: Facts | None) -> tuple[Facts, HealthReport]:
        return vm.facts(), run_health(settings, remember=False, pm2=vm.pm2)

    looker = Looker(settings, look, clock)
    looker()
    record.incidents_open(3)  # a family that appears after the first render
    clock.advance(5)
    looker()  # a steady cycle: health's figures anew, the families carried
    assert "vmkeeper_incidents_open" not in prom.read_text()
    assert _series(prom.read_text(), "vmkeeper_health_last_run_timestamp_seconds") == {
        "": clock()}
    clock.advance(settings.telemetry.metric_interval_s)
    looker()  # the exporter's period has passed: rendered anew
    assert _series(prom.read_text(), "vmkeeper_incidents_open") == {"": 3}
