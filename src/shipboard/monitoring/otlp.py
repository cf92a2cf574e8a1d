"""OTLP/HTTP metrics: an ExportMetricsServiceRequest to rows, and the response back. Pure.

Gauge and Sum points become one row each (a Sum's temporality and monotonicity go into its tags);
a Histogram becomes ``<name>_count``, ``<name>_sum`` and ``<name>_p50|_p95|_p99`` estimated from
its buckets; an ExponentialHistogram the same from its exponential buckets; a Summary gives count,
sum and its quantiles. Each data point is checked against the OTLP data model as a whole: one that
breaks it is rejected with a reason (partial success) and the others of the request are kept.
"""

from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from shipboard.environments.naming import find_environment

ENVIRONMENT_KEYS = ("deployment.environment.name", "deployment.environment")
RESOURCE_TAGS = ("service.name", "service.version", "service.namespace", "service.instance.id")
TEMPORALITY = {1: "delta", 2: "cumulative"}
QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
MAX_FUTURE = timedelta(minutes=10)
MAX_REASONS = 20
# The OpenTelemetry API's instrument name syntax (metrics/api.md, "Instrument name syntax").
INSTRUMENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-/]{0,254}")
# A row to be: its name, value and the tags it adds to the point's own.
Value = tuple[str, float, dict[str, str]]
NO_RECORDED_VALUE = 1  # DataPointFlags.DATA_POINT_FLAGS_NO_RECORDED_VALUE_MASK
MAX_TAG_KEY = 255
MAX_TAG_VALUE = 1024


class BadPoint(ValueError):
    """A data point the OTLP data model does not allow; the message says why."""


@dataclass
class Converted:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, count: int, reason: str) -> None:
        self.rejected += count
        if reason not in self.reasons and len(self.reasons) < MAX_REASONS:
            self.reasons.append(reason)


def _value(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    raw = getattr(value, kind)
    if kind == "bool_value":
        return "true" if raw else "false"
    return str(raw)[:MAX_TAG_VALUE]


def _attrs(items: Any) -> dict[str, str]:
    return {kv.key: _value(kv.value) for kv in items if isinstance(kv, KeyValue)}


def _check_tags(tags: dict[str, str]) -> None:
    for key, value in tags.items():
        # PostgreSQL's text and jsonb cannot hold NUL; a key no index or filter could name.
        if "\x00" in key or "\x00" in value:
            raise BadPoint(f"attribute {key[:40]!r} holds a NUL character")
        if not key or len(key) > MAX_TAG_KEY:
            raise BadPoint(f"attribute key must be 1 to {MAX_TAG_KEY} characters")


def _time(nanos: int, now: datetime) -> datetime:
    return datetime.fromtimestamp(nanos / 1e9, UTC) if nanos else now


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise BadPoint(f"{what} is not a finite number")
    return float(value)


def histogram_quantile(q: float, bounds: list[float], counts: list[int]) -> float | None:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding rank q·n.

    ``counts`` has one entry more than ``bounds`` (the last bucket is (bounds[-1], +Inf))."""
    total = sum(counts)
    if total == 0 or not counts or len(counts) != len(bounds) + 1:
        return None
    rank = q * total
    cumulative = 0
    for i, count in enumerate(counts):
        if cumulative + count >= rank and count > 0:
            if i >= len(bounds):  # the +Inf bucket: the best estimate is its lower bound
                return bounds[-1] if bounds else None
            lower = bounds[i - 1] if i > 0 else min(0.0, bounds[0])
            upper = bounds[i]
            return lower + (upper - lower) * (rank - cumulative) / count
        cumulative += count
    return bounds[-1] if bounds else None


def convert(
    request: ExportMetricsServiceRequest, *, known_environments: set[str], now: datetime
) -> Converted:
    out = Converted()
    latest = now + MAX_FUTURE
    for resource_metrics in request.resource_metrics:
        resource = _attrs(resource_metrics.resource.attributes)
        environment = next((resource[k] for k in ENVIRONMENT_KEYS if resource.get(k)), None)
        base_tags = {k: resource[k] for k in RESOURCE_TAGS if k in resource}
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                _convert_metric(
                    metric, environment, base_tags, known_environments, now, latest, out
                )
    return out


@dataclass
class _Emitter:
    environment: str
    base_tags: dict[str, str]
    now: datetime
    latest: datetime

    def rows(self, point: Any, values: list[Value]) -> list[dict[str, Any]]:
        """The rows of one point, all or none."""
        when = _time(point.time_unix_nano, self.now)
        if when > self.latest:
            raise BadPoint("timestamp more than 10 minutes in the future")
        tags = {**self.base_tags, **_attrs(point.attributes)}
        _check_tags(tags)
        return [
            {
                "name": name,
                "value": _finite(value, name),
                "timestamp": when,
                "environment": self.environment,
                "tags": {**tags, **extra},
                "source": "application",
            }
            for name, value, extra in values
        ]


def _number_values(metric: Any, kind: str, point: Any) -> list[Value]:
    extra: dict[str, str] = {}
    if kind == "sum":
        extra = {
            "otel.temporality": TEMPORALITY.get(metric.sum.aggregation_temporality, "unspecified"),
            "otel.monotonic": "true" if metric.sum.is_monotonic else "false",
        }
    which = point.WhichOneof("value")
    if which is None:
        raise BadPoint("the point has neither as_int nor as_double")
    value = float(point.as_int if which == "as_int" else point.as_double)
    return [(metric.name, value, extra)]


def _histogram_values(name: str, point: Any) -> list[Value]:
    bounds = [float(b) for b in point.explicit_bounds]
    counts = [int(c) for c in point.bucket_counts]
    if counts and len(counts) != len(bounds) + 1:
        raise BadPoint(
            f"bucket_counts has {len(counts)} entries and explicit_bounds {len(bounds)}; "
            "bucket_counts must have one more entry than explicit_bounds"
        )
    if any(not math.isfinite(b) for b in bounds) or any(
        b >= c for b, c in itertools.pairwise(bounds)
    ):
        raise BadPoint("explicit_bounds must be finite and strictly increasing")
    if counts and sum(counts) != point.count:
        raise BadPoint(f"count {point.count} is not the sum of bucket_counts ({sum(counts)})")
    values: list[Value] = [(f"{name}_count", float(point.count), {})]
    if point.HasField("sum"):
        values.append((f"{name}_sum", _finite(point.sum, "sum"), {}))
    for suffix, q in QUANTILES.items():
        estimate = histogram_quantile(q, bounds, counts)
        if estimate is not None:
            values.append((f"{name}_{suffix}", estimate, {}))
    return values


def _exponential_values(name: str, point: Any) -> list[Value]:
    counted = (
        point.zero_count + sum(point.positive.bucket_counts) + sum(point.negative.bucket_counts)
    )
    if counted != point.count:
        raise BadPoint(f"count {point.count} is not the sum of the buckets ({counted})")
    values: list[Value] = [(f"{name}_count", float(point.count), {})]
    if point.HasField("sum"):
        values.append((f"{name}_sum", _finite(point.sum, "sum"), {}))
    return values


def _summary_values(name: str, point: Any) -> list[Value]:
    values: list[Value] = [(f"{name}_count", float(point.count), {})]
    values.append((f"{name}_sum", _finite(point.sum, "sum"), {}))
    for quantile in point.quantile_values:
        if not 0 <= quantile.quantile <= 1:
            raise BadPoint(f"quantile {quantile.quantile} is outside [0, 1]")
        values.append((name, float(quantile.value), {"quantile": f"{quantile.quantile:g}"}))
    return values


def _point_values(metric: Any, kind: str, point: Any) -> list[Value]:
    if kind in ("gauge", "sum"):
        return _number_values(metric, kind, point)
    if kind == "histogram":
        return _histogram_values(metric.name, point)
    if kind == "exponential_histogram":
        return _exponential_values(metric.name, point)
    return _summary_values(metric.name, point)


def _convert_metric(
    metric: Any,
    environment: str | None,
    base_tags: dict[str, str],
    known: set[str],
    now: datetime,
    latest: datetime,
    out: Converted,
) -> None:
    kind = metric.WhichOneof("data")
    points = list(getattr(metric, kind).data_points) if kind else []
    if not points or kind is None:
        return
    if environment is None:
        out.reject(len(points), "resource has no deployment.environment.name attribute")
        return
    ours = find_environment(environment, known)
    if ours is None:
        out.reject(len(points), f"unknown environment {environment[:100]!r}")
        return
    if not INSTRUMENT_NAME.fullmatch(metric.name):
        out.reject(
            len(points),
            f"metric name {metric.name[:100]!r} is not an OpenTelemetry instrument name "
            "(a letter, then up to 254 letters, digits, '_', '.', '-' or '/')",
        )
        return
    emit = _Emitter(ours, base_tags, now, latest)
    for point in points:
        if point.flags & NO_RECORDED_VALUE:
            continue  # a staleness marker: nothing was measured, nothing to store
        try:
            out.rows.extend(emit.rows(point, _point_values(metric, kind, point)))
        except BadPoint as exc:
            out.reject(1, f"{metric.name}: {exc}")


def response(converted: Converted) -> ExportMetricsServiceResponse:
    answer = ExportMetricsServiceResponse()
    if converted.rejected:
        answer.partial_success.rejected_data_points = converted.rejected
        answer.partial_success.error_message = "; ".join(converted.reasons)[:2000]
    return answer
