"""The telemetry tests' shared fixtures: a collector (fl-telemetry's receiver, in-process), and
no process-wide handle left behind by a test (setup is once per process by design)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import otlp
from vmkeeper import telemetry


@pytest.fixture(autouse=True)
def _no_leftover_handle() -> Iterator[None]:
    yield
    telemetry.shutdown(0.1)


@pytest.fixture
def collector() -> Iterator[tuple[str, otlp.Received]]:
    yield from otlp.serve()
