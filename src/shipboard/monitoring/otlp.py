"""OTLP/HTTP metrics: an ExportMetricsServiceRequest to rows, and the response back. Pure.

Gauge and Sum points become one row each (a monotonic Sum is tagged ``otel.monotonic``); a
Histogram becomes ``<name>_count``, ``<name>_sum`` and ``<name>_p50|_p95|_p99`` estimated from its
buckets; an ExponentialHistogram the same from its exponential buckets; a Summary gives count, sum
and its quantiles. Every Sum, Histogram, ExponentialHistogram and Summary is stored per interval
(delta): cumulative points come out of ``convert`` as ``Pending`` and become increments once the
service has read their series' previous point (``temporality.py``). Each data point is checked
against the OTLP data model as a whole: one that breaks it is rejected with a reason (partial
success) and the others of the request are kept.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from shipboard.environments.naming import find_environment
from shipboard.monitoring.temporality import Reading, exponential_quantile, exponential_reading

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
MIN_SCALE, MAX_SCALE = -10, 20  # the exponential histogram scales the data model allows


class BadPoint(ValueError):
    """A data point the OTLP data model does not allow; the message says why."""


@dataclass
class Converted:
    rows: list[dict[str, Any]] = field(default_factory=list)
    # Cumulative points, stored as increments by the service (it holds the series' state).
    pending: list[Pending] = field(default_factory=list)
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
        # A cumulative series is one resource's, one scope's, one metric's, one attribute set's.
        identity = json.dumps(sorted(resource.items()))
        for scope_metrics in resource_metrics.scope_metrics:
            scope = f"{identity}|{scope_metrics.scope.name}|{scope_metrics.scope.version}"
            for metric in scope_metrics.metrics:
                _convert_metric(
                    metric,
                    _Context(environment, base_tags, scope, now, latest),
                    known_environments,
                    out,
                )
    return out


@dataclass
class _Context:
    environment: str | None
    base_tags: dict[str, str]
    scope: str
    now: datetime
    latest: datetime


@dataclass
class Pending:
    """A cumulative point, stored as its increment once the series' previous point is known
    (``temporality.increment``; the service reads and writes that state)."""

    key: str
    kind: str
    name: str
    start_ns: int
    time_ns: int
    reading: Reading
    row: dict[str, Any]

    def rows(self, reading: Reading) -> list[dict[str, Any]]:
        """The rows of an increment; values that are not finite numbers are left out."""
        values = values_of(self.kind, self.name, reading)
        return _rows(self.row["timestamp"], self.row["environment"], self.row["tags"], values)


def values_of(kind: str, name: str, reading: Reading) -> list[Value]:
    """The rows a reading (one point, or the increment of one) is stored as."""
    if kind == "number":
        extra = {"otel.monotonic": "true"} if reading.get("monotonic") else {}
        return [(name, float(reading["value"]), extra)]
    values: list[Value] = [(f"{name}_count", float(reading["count"]), {})]
    if reading.get("sum") is not None:
        values.append((f"{name}_sum", float(reading["sum"]), {}))
    if kind == "histogram":
        for suffix, q in QUANTILES.items():
            estimate = histogram_quantile(q, reading["bounds"], reading["counts"])
            if estimate is not None:
                values.append((f"{name}_{suffix}", estimate, {}))
    elif kind == "exponential":
        for suffix, q in QUANTILES.items():
            estimate = exponential_quantile(q, reading)
            if estimate is not None:
                values.append((f"{name}_{suffix}", estimate, {}))
    elif kind == "summary":
        for quantile, value in reading["quantiles"]:
            values.append((name, float(value), {"quantile": f"{quantile:g}"}))
    return values


def _number_reading(metric: Any, kind: str, point: Any) -> Reading:
    which = point.WhichOneof("value")
    if which is None:
        raise BadPoint("the point has neither as_int nor as_double")
    value = _finite(float(point.as_int if which == "as_int" else point.as_double), "value")
    monotonic = kind == "sum" and metric.sum.is_monotonic
    return {"value": value, "monotonic": True} if monotonic else {"value": value}


def _histogram_reading(point: Any) -> Reading:
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
    total = _finite(point.sum, "sum") if point.HasField("sum") else None
    return {"count": int(point.count), "sum": total, "bounds": bounds, "counts": counts}


def _exponential_reading(point: Any) -> Reading:
    if not MIN_SCALE <= point.scale <= MAX_SCALE:
        raise BadPoint(f"scale {point.scale} is outside [{MIN_SCALE}, {MAX_SCALE}]")
    counted = (
        point.zero_count + sum(point.positive.bucket_counts) + sum(point.negative.bucket_counts)
    )
    if counted != point.count:
        raise BadPoint(f"count {point.count} is not the sum of the buckets ({counted})")
    if point.HasField("sum"):
        _finite(point.sum, "sum")
    if not math.isfinite(point.zero_threshold) or point.zero_threshold < 0:
        raise BadPoint("zero_threshold must be a finite number at least 0")
    return exponential_reading(point)


def _summary_reading(point: Any) -> Reading:
    quantiles = []
    for quantile in point.quantile_values:
        if not 0 <= quantile.quantile <= 1:
            raise BadPoint(f"quantile {quantile.quantile} is outside [0, 1]")
        quantiles.append((float(quantile.quantile), _finite(quantile.value, "quantile value")))
    return {"count": int(point.count), "sum": _finite(point.sum, "sum"), "quantiles": quantiles}


READINGS: dict[str, tuple[str, Callable[[Any, Any], Reading]]] = {
    "gauge": ("number", lambda metric, point: _number_reading(metric, "gauge", point)),
    "sum": ("number", lambda metric, point: _number_reading(metric, "sum", point)),
    "histogram": ("histogram", lambda _metric, point: _histogram_reading(point)),
    "exponential_histogram": ("exponential", lambda _metric, point: _exponential_reading(point)),
    "summary": ("summary", lambda _metric, point: _summary_reading(point)),
}


def _cumulative(metric: Any, kind: str) -> bool:
    """Whether the metric's points are cumulative (Summary points always are, as Prometheus'
    summaries); raise for a temporality the data model does not allow."""
    if kind == "gauge":
        return False
    if kind == "summary":
        return True
    temporality = getattr(metric, kind).aggregation_temporality
    if temporality not in TEMPORALITY:
        raise BadPoint("aggregation_temporality must be DELTA or CUMULATIVE")
    return TEMPORALITY[temporality] == "cumulative"


def _convert_metric(metric: Any, context: _Context, known: set[str], out: Converted) -> None:
    kind = metric.WhichOneof("data")
    points = list(getattr(metric, kind).data_points) if kind else []
    if not points or kind is None:
        return
    if context.environment is None:
        out.reject(len(points), "resource has no deployment.environment.name attribute")
        return
    ours = find_environment(context.environment, known)
    if ours is None:
        out.reject(len(points), f"unknown environment {context.environment[:100]!r}")
        return
    if not INSTRUMENT_NAME.fullmatch(metric.name):
        out.reject(
            len(points),
            f"metric name {metric.name[:100]!r} is not an OpenTelemetry instrument name "
            "(a letter, then up to 254 letters, digits, '_', '.', '-' or '/')",
        )
        return
    try:
        cumulative = _cumulative(metric, kind)
    except BadPoint as exc:
        out.reject(len(points), f"{metric.name}: {exc}")
        return
    shape, read = READINGS[kind]
    for point in points:
        if point.flags & NO_RECORDED_VALUE:
            continue  # a staleness marker: nothing was measured, nothing to store
        try:
            when = _time(point.time_unix_nano, context.now)
            if when > context.latest:
                raise BadPoint("timestamp more than 10 minutes in the future")
            attributes = _attrs(point.attributes)
            tags = {**context.base_tags, **attributes}
            _check_tags(tags)
            reading = read(metric, point)
        except BadPoint as exc:
            out.reject(1, f"{metric.name}: {exc}")
            continue
        if not cumulative:
            # Most points (gauges, delta exporters): straight to rows, no series identity.
            out.rows.extend(_rows(when, ours, tags, values_of(shape, metric.name, reading)))
            continue
        identity = [ours, context.scope, metric.name, kind, sorted(attributes.items())]
        out.pending.append(
            Pending(
                key=hashlib.sha256(json.dumps(identity).encode()).hexdigest(),
                kind=shape,
                name=metric.name,
                start_ns=int(point.start_time_unix_nano),
                time_ns=int(point.time_unix_nano),
                reading=reading,
                row={"timestamp": when, "environment": ours, "tags": tags},
            )
        )


def _rows(
    when: datetime, environment: str, tags: dict[str, str], values: list[Value]
) -> list[dict[str, Any]]:
    """The rows of one point's values; values that are not finite numbers are left out."""
    return [
        {
            "name": name,
            "value": value,
            "timestamp": when,
            "environment": environment,
            "tags": {**tags, **extra} if extra else tags,
            "source": "application",
        }
        for name, value, extra in values
        if math.isfinite(value)
    ]


def response(converted: Converted) -> ExportMetricsServiceResponse:
    answer = ExportMetricsServiceResponse()
    if converted.rejected:
        answer.partial_success.rejected_data_points = converted.rejected
        answer.partial_success.error_message = "; ".join(converted.reasons)[:2000]
    return answer
