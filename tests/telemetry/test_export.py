"""Telemetry out (issue 15), in the fast tier: what reaches a real OTLP/HTTP endpoint (decoded
with opentelemetry-proto), the Prometheus text, and that a down or silent collector costs an
operation at most the 2 s flush."""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

import pytest

from tests.support import otlp
from vmkeeper import proc, telemetry
from vmkeeper.progress import Phase, ProgressEvent, silent
from vmkeeper.settings import Settings


def _settings(url: str) -> Settings:
    return Settings.model_validate({"telemetry": {"otlp_endpoint": url, "environment": "test"}})


def _by_name(received: otlp.Received) -> dict[str, tuple[object, object]]:
    return {span.name: (span, resource) for span, resource in received.spans()}


def test_an_operation_its_steps_and_commands_arrive_as_one_trace_with_masked_argv(collector):
    url, received = collector
    with telemetry.operation(_settings(url), "deploy"):
        progress = telemetry.steps(silent)
        progress(ProgressEvent("build", Phase.STARTED, "build", 5))
        proc.run([sys.executable, "-c", "raise SystemExit(3)", "API_TOKEN=hunter2"],
                 timeout=10, check=False)
        progress(ProgressEvent("built", Phase.DONE, "build", 5, 0.1))
    spans = _by_name(received)
    operation, resource = spans["vmkeeper deploy"]
    step, _ = spans["step build"]
    command, _ = spans[f"exec {os.path.basename(sys.executable)}"]
    assert step.parent_span_id == operation.span_id and not operation.parent_span_id
    assert command.parent_span_id == step.span_id
    assert {operation.trace_id, step.trace_id, command.trace_id} == {operation.trace_id}
    args = otlp.attributes(command)
    assert args["process.command_args"][-1] == "API_TOKEN=***"
    assert args["process.exit.code"] == 3 and args["vmkeeper.command.seconds"] > 0
    res = otlp.attributes(resource)
    assert res["service.name"] == "vmkeeper" and res["deployment.environment.name"] == "test"
    assert res["service.version"] and res["service.instance.id"] and res["host.name"]


def test_a_worker_started_with_traceparent_continues_the_trace(collector):
    url, received = collector
    script = ("from vmkeeper import telemetry\nfrom vmkeeper.settings import Settings\n"
              f"s = Settings.model_validate({{'telemetry': {{'otlp_endpoint': {url!r}}}}})\n"
              "telemetry.setup(s, 'vmkeeper-media-worker')\n"
              "with telemetry.span('media job'):\n    pass\ntelemetry.shutdown()\n")
    with telemetry.operation(_settings(url), "media"):
        proc.run([sys.executable, "-c", script], timeout=30)
    spans = _by_name(received)
    parent, _ = spans["vmkeeper media"]
    worker, resource = spans["media job"]
    assert worker.trace_id == parent.trace_id
    exec_span, _ = spans[f"exec {os.path.basename(sys.executable)}"]
    assert worker.parent_span_id == exec_span.span_id  # proc.run passes its span
    assert otlp.attributes(resource)["service.name"] == "vmkeeper-media-worker"


def test_an_operation_record_is_a_redacted_log_record_in_its_trace(collector):
    url, received = collector
    secret = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
    with telemetry.operation(_settings(url), "deploy") as handle:
        handle.record_operation("deploy", False, 12.5, 2, revision=None,
                                record={"message": f"push failed with {secret}", "step": "fetch"})
    (record,) = received.logs()
    operation, _ = _by_name(received)["vmkeeper deploy"]
    assert record.trace_id == operation.trace_id and record.span_id == operation.span_id
    assert secret not in record.body.string_value and "push failed" in record.body.string_value
    assert record.event_name == "vmkeeper.deploy"
    assert otlp.attributes(record)["vmkeeper.step"] == "fetch"


def test_metrics_reach_the_collector_under_their_convention_names(collector):
    url, received = collector
    with telemetry.operation(_settings(url), "health") as handle:
        handle.families.record_http_probe("frontend", 0.02, 200)
        handle.families.record_deploy("deploy", True, 40.0, None)
    assert {"http.client.request.duration", "deployment.duration",
            "vmkeeper.telemetry.dropped"} <= received.metric_names()


@pytest.mark.parametrize("mode", ["down", "hang"])
def test_a_down_or_silent_collector_costs_at_most_the_flush_and_drops_are_counted(mode):
    servers = otlp.serve("hang") if mode == "hang" else None
    if servers is not None:
        url, _ = next(servers)
    else:
        url = "http://127.0.0.1:9"  # discard port: nothing listens, connections are refused
    started = time.monotonic()
    with telemetry.operation(_settings(url), "deploy") as handle:
        for _ in range(50):
            with telemetry.span("step"):
                pass
    elapsed = time.monotonic() - started
    assert elapsed <= telemetry.FLUSH_TIMEOUT_S + 0.5
    assert handle.dropped()["traces"] >= 51
    assert "vmkeeper_telemetry_dropped_total{signal=\"traces\"}" in handle.prometheus_text()
    if servers is not None:
        servers.close()


def test_prometheus_text_uses_prometheus_naming_and_bounded_labels(collector):
    url, _ = collector
    handle = telemetry.setup(_settings(url), "vmkeeper-watch")
    for n in range(20):
        handle.record_operation("deploy", n % 4 != 0, 30.0 + n, n % 3,
                                revision=f"{n:040x}", record={"message": f"deploy {n}"})
    for n in range(100):
        handle.families.record_media_job("ok" if n % 10 else "failed", 2.0 + n, 80 * 2**20)
        handle.families.record_rejected("too_long" if n % 2 else "not_video")
    handle.families.record_pm2_app("tbp-frontend", online=True, restarts=2,
                                   memory_bytes=300 * 2**20, cpu=0.25)
    text = handle.prometheus_text()
    series = [line for line in text.splitlines() if line and not line.startswith("#")]
    release = [line for line in series if line.startswith("vmkeeper_release_info")]
    assert release == [f'vmkeeper_release_info{{vcs_ref_head_revision="{19:040x}"}} 1']
    for name in ("deployment_duration_seconds_bucket", "deployment_failed_requests_total",
                 "vmkeeper_media_job_duration_seconds_count",
                 "vmkeeper_media_job_memory_peak_bytes_sum", "vmkeeper_media_rejected_total",
                 "process_memory_usage_bytes", "process_cpu_utilization_ratio", "target_info"):
        assert any(line.startswith(name) for line in series), name
    # 20 deploys and 100 jobs; then as many again: the series are the label values the code
    # allows (operation × status, result, reason, one release), not one per deploy or job.
    assert 60 <= len(series) <= 130, len(series)
    for n in range(20, 40):
        handle.record_operation("rollback" if n % 2 else "deploy", n % 4 != 0, 1.0, 0,
                                revision=f"{n:040x}", record={"message": "again"})
    for n in range(100):
        handle.families.record_media_job("ok" if n % 10 else "failed", 1.0, 2**20)
    again = [line for line in handle.prometheus_text().splitlines()
             if line and not line.startswith("#")]
    histogram_series = 16 + 1 + 2
    assert len(again) == len(series) + histogram_series  # one new set: rollback, succeeded


def test_telemetry_off_sets_nothing_up_and_costs_proc_nothing():
    settings = Settings.model_validate({"telemetry": {"enabled": False}})
    with telemetry.operation(settings, "health") as handle:
        assert handle is None and telemetry.active() is None
        assert proc.run(["true"], timeout=5).ok
    assert telemetry.child_env() == {}


@pytest.mark.slow  # six CLI runs; timing on a shared machine wants medians
@pytest.mark.parametrize("mode", ["down", "hang"])
def test_the_cli_health_with_a_down_or_silent_collector_takes_at_most_2_s_longer(mode):
    def timed(*flags: str) -> float:
        runs = []
        for _ in range(3):
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "vmkeeper", *flags, "health", "--json"],
                           capture_output=True, timeout=60, check=False)
            runs.append(time.monotonic() - started)
        return statistics.median(runs)

    off = timed("--set", "telemetry.enabled=false")
    servers = otlp.serve("hang")
    url, _ = next(servers) if mode == "hang" else ("http://127.0.0.1:9", None)
    try:
        with_collector = timed("--set", f"telemetry.otlp_endpoint={url}")
    finally:
        servers.close()
    assert with_collector - off <= 2.0, (off, with_collector)
