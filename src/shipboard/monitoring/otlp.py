"""OTLP/HTTP metrics: an ExportMetricsServiceRequest to rows, and the response back.

Gauge and Sum points become one row each (a Sum's temporality and monotonicity go into its tags);
a Histogram becomes ``<name>_count``, ``<name>_sum`` and ``<name>_p50|_p95|_p99`` estimated from
its buckets; an ExponentialHistogram and a Summary give count and sum (a Summary also its
quantiles). Points that cannot be stored are counted as rejected, with a reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

ENVIRONMENT_KEYS = ("deployment.environment.name", "deployment.environment")
RESOURCE_TAGS = ("service.name", "service.version", "service.namespace", "service.instance.id")
TEMPORALITY = {1: "delta", 2: "cumulative"}
QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
MAX_FUTURE = timedelta(minutes=10)


@dataclass
class Converted:
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejected: int = 0
    reasons: list[str] = field(default_factory=list)

    def reject(self, count: int, reason: str) -> None:
        self.rejected += count
        if reason not in self.reasons:
            self.reasons.append(reason)


def _value(value: AnyValue) -> str:
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    raw = getattr(value, kind)
    if kind == "bool_value":
        return "true" if raw else "false"
    if kind in ("array_value", "kvlist_value", "bytes_value"):
        return str(raw)[:1024]
    return str(raw)


def _attrs(items: Any) -> dict[str, str]:
    return {kv.key: _value(kv.value) for kv in items if isinstance(kv, KeyValue)}


def _time(nanos: int, now: datetime) -> datetime:
    return datetime.fromtimestamp(nanos / 1e9, UTC) if nanos else now


def histogram_quantile(q: float, bounds: list[float], counts: list[int]) -> float | None:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket holding rank q·n."""
    total = sum(counts)
    if total == 0 or not counts:
        return None
    rank = q * total
    cumulative = 0
    for i, count in enumerate(counts):
        if cumulative + count >= rank and count > 0:
            lower = bounds[i - 1] if i > 0 else min(0.0, bounds[0]) if bounds else 0.0
            if i >= len(bounds):  # the +Inf bucket: the best estimate is its lower bound
                return bounds[-1] if bounds else None
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
    out: Converted

    def add(self, name: str, value: float, point: Any, extra: dict[str, str]) -> None:
        when = _time(point.time_unix_nano, self.now)
        if not math.isfinite(value):
            self.out.reject(1, f"{name}: value is not a finite number")
            return
        if when > self.latest:
            self.out.reject(1, f"{name}: timestamp more than 10 minutes in the future")
            return
        self.out.rows.append(
            {
                "name": name,
                "value": float(value),
                "timestamp": when,
                "environment": self.environment,
                "tags": {**self.base_tags, **_attrs(point.attributes), **extra},
                "source": "application",
            }
        )


def _number_points(metric: Any, kind: str, points: list[Any], emit: _Emitter) -> None:
    extra: dict[str, str] = {}
    if kind == "sum":
        extra = {
            "otel.temporality": TEMPORALITY.get(metric.sum.aggregation_temporality, "unspecified"),
            "otel.monotonic": "true" if metric.sum.is_monotonic else "false",
        }
    for point in points:
        which = point.WhichOneof("value")
        emit.add(
            metric.name, float(point.as_int if which == "as_int" else point.as_double), point, extra
        )


def _distribution_points(metric: Any, kind: str, points: list[Any], emit: _Emitter) -> None:
    name = metric.name
    for point in points:
        emit.add(f"{name}_count", float(point.count), point, {})
        emit.add(f"{name}_sum", float(point.sum), point, {})
        if kind == "histogram":
            bounds, counts = list(point.explicit_bounds), [int(c) for c in point.bucket_counts]
            for suffix, q in QUANTILES.items():
                estimate = histogram_quantile(q, bounds, counts)
                if estimate is not None:
                    emit.add(f"{name}_{suffix}", estimate, point, {})
        elif kind == "summary":
            for quantile in point.quantile_values:
                emit.add(name, float(quantile.value), point, {"quantile": f"{quantile.quantile:g}"})


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
    if environment not in known:
        out.reject(len(points), f"unknown environment {environment!r}")
        return
    emit = _Emitter(environment, base_tags, now, latest, out)
    if kind in ("gauge", "sum"):
        _number_points(metric, kind, points, emit)
    elif kind in ("histogram", "exponential_histogram", "summary"):
        _distribution_points(metric, kind, points, emit)
    else:
        out.reject(len(points), f"{metric.name}: unsupported metric type {kind}")


def response(converted: Converted) -> ExportMetricsServiceResponse:
    answer = ExportMetricsServiceResponse()
    if converted.rejected:
        answer.partial_success.rejected_data_points = converted.rejected
        answer.partial_success.error_message = "; ".join(converted.reasons)[:2000]
    return answer
