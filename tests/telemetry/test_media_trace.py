"""A real reversal (PyAV worker child) with telemetry on: the worker's span is the child of the
supervisor's "media job" span, across the process boundary (TRACEPARENT)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import otlp
from vmkeeper import telemetry
from vmkeeper.media import service
from vmkeeper.media.clips import Clip, make_clip
from vmkeeper.settings import Settings

pytestmark = pytest.mark.slow


def test_the_worker_span_is_a_child_of_the_media_job_span(collector, tmp_path: Path):
    url, received = collector
    clip = make_clip(tmp_path / "in.mp4", Clip(size="160x120", seconds=1))
    settings = Settings.model_validate({"telemetry": {"otlp_endpoint": url}})
    with telemetry.operation(settings, "media reverse"):
        result = service.reverse(settings.media, clip, tmp_path / "out.mp4")
    assert result.ok, result.error
    spans = {span.name: (span, resource) for span, resource in received.spans()}
    job, _ = spans["media job"]
    worker, resource = spans["media reverse"]
    operation, _ = spans["vmkeeper media reverse"]
    assert job.parent_span_id == operation.span_id
    assert worker.parent_span_id == job.span_id and worker.trace_id == operation.trace_id
    assert otlp.attributes(resource)["service.name"] == "vmkeeper-media-worker"
    assert otlp.attributes(worker)["process.exit.code"] == 0
