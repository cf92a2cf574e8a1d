"""The monitoring report: per metric, its range, trend and anomalies; the alerts and how fast
they were resolved.

From the database the statistics are over the points. From the metrics store
(SHIPBOARD_PROMETHEUS_URL) they are computed by the store over ``STORE_BUCKETS`` buckets of the
period (``monitoring/store_series.py``, the series API's own queries): points, min, max and avg
are exact; p95 is exact for one series (over several, the quantile of their quantiles); the
trend and the anomalies are over the buckets' means, since a store that outgrew a database is not
read point by point."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.orm import Session

from shipboard.alerting import repository as alerting
from shipboard.alerting.evaluation import MAD_SCALE
from shipboard.core.promql import PromStore
from shipboard.core.time import utcnow
from shipboard.monitoring import store_series
from shipboard.monitoring.models import MonitoringMetric
from shipboard.monitoring.series import mean, percentile

ANOMALY_Z = 3.5
MAX_POINTS_PER_METRIC = 200_000
STORE_BUCKETS = 240


class MetricSummary(BaseModel):
    name: str
    points: int
    min: float
    max: float
    avg: float
    p95: float
    trend_per_day: float | None
    trend_p_value: float | None
    trend: str
    anomalies: int


class AlertSummary(BaseModel):
    fired: int
    resolved: int
    mean_time_to_resolve_s: float | None
    median_time_to_resolve_s: float | None
    by_rule: dict[str, int]


class MonitoringReport(BaseModel):
    environment: str
    since: datetime
    until: datetime
    metrics: list[MetricSummary]
    alerts: AlertSummary
    source: Literal["embedded", "store"] = "embedded"
    # Why the metrics store gave no metrics (a scheduled report sent after its retries).
    store_error: str | None = None


@dataclass(frozen=True)
class StoreMetrics:
    """The metrics store's part of a report, read with no transaction open (an HTTP call of up
    to the store's timeout must not hold SQLite's write lock or a PostgreSQL connection), then
    put beside the database's alerts by ``monitoring_report``."""

    since: datetime
    until: datetime
    metrics: list[MetricSummary] = field(default_factory=list)
    error: str | None = None


def read_store(store: PromStore, *, environment: str, period: timedelta) -> StoreMetrics:
    """The metrics of the last ``period`` from the store; raises ``MetricsStoreUnavailable``."""
    until = utcnow()
    since = until - period
    found = store_series.names(store, environment=environment, since=since, until=until)
    summaries = [
        s for name in found if (s := _store_summary(store, environment, name, since, until))
    ]
    return StoreMetrics(since=since, until=until, metrics=summaries)


def monitoring_report(
    session: Session,
    *,
    environment: str,
    period: timedelta,
    store: PromStore | None = None,
    read: StoreMetrics | None = None,
) -> MonitoringReport:
    """The report over the last ``period``: metrics from the database, or from the metrics
    store (``read`` already, or asked of ``store`` now); alerts from the database."""
    if read is None and store is not None:
        read = read_store(store, environment=environment, period=period)
    if read is not None:
        since, until, summaries = read.since, read.until, read.metrics
    else:
        until = utcnow()
        since = until - period
        names = session.scalars(
            sa.select(MonitoringMetric.name)
            .where(MonitoringMetric.environment == environment, MonitoringMetric.timestamp >= since)
            .distinct()
        )
        summaries = [
            s for name in sorted(names) if (s := _summary(session, environment, name, since, until))
        ]
    return MonitoringReport(
        environment=environment,
        since=since,
        until=until,
        metrics=summaries,
        alerts=_alerts(session, environment, since, until),
        source="embedded" if read is None else "store",
        store_error=None if read is None else read.error,
    )


def _summary(
    session: Session, environment: str, name: str, since: datetime, until: datetime
) -> MetricSummary | None:
    rows = session.execute(
        sa.select(MonitoringMetric.timestamp, MonitoringMetric.value)
        .where(
            MonitoringMetric.environment == environment,
            MonitoringMetric.name == name,
            MonitoringMetric.timestamp >= since,
            MonitoringMetric.timestamp < until,
        )
        .limit(MAX_POINTS_PER_METRIC)
    ).all()
    points = [(t, float(v)) for t, v in rows if t is not None]
    if not points:
        return None
    values = [v for _, v in points]
    slope, p_value, trend = _trend([(t - since).total_seconds() / 86400 for t, _ in points], values)
    return MetricSummary(
        name=name,
        points=len(values),
        min=min(values),
        max=max(values),
        avg=mean(values),
        p95=percentile(0.95)(values),
        trend_per_day=slope,
        trend_p_value=p_value,
        trend=trend,
        anomalies=_anomalies(values),
    )


def _store_summary(
    store: PromStore, environment: str, name: str, since: datetime, until: datetime
) -> MetricSummary | None:
    period_s = (until - since).total_seconds()
    step = max(1, math.ceil(period_s / STORE_BUCKETS))

    def buckets(agg: str, step_s: int = step) -> dict[datetime, float]:
        found = store_series.read(
            store,
            name=name,
            environment=environment,
            tags={},
            since=since,
            until=until,
            step_s=step_s,
            agg=agg,
            # One NaN sample (a summary's quantile with no observations) would otherwise fail
            # the whole report: its bucket is left out of the numbers instead.
            finite_only=True,
        )
        return dict(found)

    counts = buckets("count")
    if not counts:
        return None
    sums, lows, highs = buckets("sum"), buckets("min"), buckets("max")
    whole = buckets("p95", math.ceil(period_s))
    starts = sorted(t for t in counts if t in sums and counts[t] > 0)
    if not starts or not lows or not highs:
        return None  # every sample was NaN: nothing to summarise
    means = [sums[t] / counts[t] for t in starts]
    total = sum(counts.values())
    # Over the buckets whose sum is a number: a bucket left out for a NaN sample keeps its count.
    counted = math.fsum(counts[t] for t in starts)
    middle = step / 2
    slope, p_value, trend = _trend(
        [((t - since).total_seconds() + middle) / 86400 for t in starts], means
    )
    return MetricSummary(
        name=name,
        points=round(total),
        min=min(lows.values()),
        max=max(highs.values()),
        avg=math.fsum(sums[t] for t in starts) / counted,
        # Both answers come from one store; should the data move in between, the max bounds it.
        p95=next(iter(whole.values()), max(highs.values())),
        trend_per_day=slope,
        trend_p_value=p_value,
        trend=trend,
        anomalies=_anomalies(means),
    )


def _trend(
    days: Sequence[float], values: Sequence[float]
) -> tuple[float | None, float | None, str]:
    """The least-squares slope per day, its p-value, and whether it is a trend (p < 0.05)."""
    if len(values) < 3 or len(set(days)) < 2 or len(set(values)) < 2:
        return None, None, "flat"
    from scipy.stats import linregress

    fit = linregress(days, values)
    slope, p_value = float(fit.slope), float(fit.pvalue)
    if p_value < 0.05:
        return slope, p_value, "rising" if slope > 0 else "falling"
    return slope, p_value, "flat"


def _anomalies(values: Sequence[float]) -> int:
    """Values whose robust z-score (median and MAD) is past ANOMALY_Z."""
    centre = statistics.median(values)
    mad = statistics.median([abs(v - centre) for v in values]) * MAD_SCALE
    return sum(1 for v in values if mad and abs(v - centre) / mad > ANOMALY_Z)


def _alerts(session: Session, environment: str, since: datetime, until: datetime) -> AlertSummary:
    rows = alerting.alerts_started(session, environment=environment, since=since, until=until)
    durations = [
        (a.ends_at - a.starts_at).total_seconds()
        for a, _ in rows
        if a.state == "resolved" and a.ends_at and a.starts_at
    ]
    by_rule: dict[str, int] = {}
    for _, name in rows:
        by_rule[name] = by_rule.get(name, 0) + 1
    return AlertSummary(
        fired=len(rows),
        resolved=len(durations),
        mean_time_to_resolve_s=statistics.fmean(durations) if durations else None,
        median_time_to_resolve_s=statistics.median(durations) if durations else None,
        by_rule=by_rule,
    )
