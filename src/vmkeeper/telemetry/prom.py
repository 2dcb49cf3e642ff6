"""Prometheus text (exposition format 0.0.4) from the SDK's collected metrics.

The OpenTelemetry → Prometheus naming rules: dots become underscores, the unit is a suffix in
base units (``_seconds``, ``_bytes``, ``_ratio``), monotonic sums end in ``_total``, ``*.info``
becomes ``*_info``, and the resource is one ``target_info`` series.
"""

from __future__ import annotations

import math
import re
from typing import Any

from opentelemetry.sdk.metrics.export import (
    Histogram,
    HistogramDataPoint,
    MetricsData,
    NumberDataPoint,
    Sum,
)
from opentelemetry.sdk.resources import Resource

_UNITS = {"s": "seconds", "By": "bytes", "1": "ratio"}
_INVALID = re.compile(r"[^a-zA-Z0-9_:]")


def _name(name: str, unit: str, counter: bool) -> str:
    base = _INVALID.sub("_", name)
    if base.endswith("_info"):
        return base
    suffix = _UNITS.get(unit, "")
    # A 0/1/2 state gauge is not a ratio; only units given in base units get a suffix.
    if suffix and not (suffix == "ratio" and not name.endswith(("utilization", "pressure"))) \
            and not base.endswith(f"_{suffix}"):
        base += f"_{suffix}"
    return base + "_total" if counter else base


def _labels(attributes: Any, extra: str = "") -> str:
    parts = [f'{_INVALID.sub("_", str(k))}="{_escape(str(v))}"'
             for k, v in sorted(dict(attributes or {}).items())]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if isinstance(value, float) and not value.is_integer() \
        else str(int(value))


def _histogram(name: str, point: Any) -> list[str]:
    lines, running = [], 0
    for bound, count in zip([*point.explicit_bounds, math.inf], point.bucket_counts, strict=True):
        running += count
        le = 'le="' + _number(bound) + '"'
        lines.append(f"{name}_bucket{_labels(point.attributes, le)} {running}")
    lines.append(f"{name}_sum{_labels(point.attributes)} {_number(point.sum)}")
    lines.append(f"{name}_count{_labels(point.attributes)} {point.count}")
    return lines


def render(data: MetricsData | None, resource: Resource,
           skip: frozenset[str] = frozenset()) -> str:
    """``skip``: Prometheus names left out (a textfile that has them from health already)."""
    lines = [] if "target_info" in skip else \
        ["# TYPE target_info gauge", f"target_info{_labels(resource.attributes)} 1"]
    for resource_metrics in (data.resource_metrics if data else []):
        for scope in resource_metrics.scope_metrics:
            for metric in scope.metrics:
                body = metric.data
                counter = isinstance(body, Sum) and body.is_monotonic
                name = _name(metric.name, metric.unit or "", counter)
                if name in skip:
                    continue
                kind = "histogram" if isinstance(body, Histogram) else \
                    "counter" if counter else "gauge"
                lines.append(f"# HELP {name} {metric.description}")
                lines.append(f"# TYPE {name} {kind}")
                for point in body.data_points:
                    if isinstance(point, HistogramDataPoint):
                        lines += _histogram(name, point)
                    elif isinstance(point, NumberDataPoint):
                        lines.append(f"{name}{_labels(point.attributes)} {_number(point.value)}")
    return "\n".join(lines) + "\n"
