"""The monitoring report: per metric, its range, trend and anomalies; the alerts and how fast
they were resolved."""

from __future__ import annotations

import statistics
from datetime import datetime, timedelta

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.orm import Session

from shipboard.alerting import repository as alerting
from shipboard.alerting.evaluation import MAD_SCALE
from shipboard.core.time import utcnow
from shipboard.monitoring.models import MonitoringMetric
from shipboard.monitoring.series import mean, percentile

ANOMALY_Z = 3.5
MAX_POINTS_PER_METRIC = 200_000


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


def monitoring_report(session: Session, *, environment: str, period: timedelta) -> MonitoringReport:
    until = utcnow()
    since = until - period
    names = list(
        session.scalars(
            sa.select(MonitoringMetric.name)
            .where(MonitoringMetric.environment == environment, MonitoringMetric.timestamp >= since)
            .distinct()
        )
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
    slope = p_value = None
    trend = "flat"
    days = [(t - since).total_seconds() / 86400 for t, _ in points]
    if len(points) >= 3 and len(set(days)) > 1 and len(set(values)) > 1:
        from scipy.stats import linregress

        fit = linregress(days, values)
        slope, p_value = float(fit.slope), float(fit.pvalue)
        if p_value < 0.05:
            trend = "rising" if slope > 0 else "falling"
    centre = statistics.median(values)
    mad = statistics.median([abs(v - centre) for v in values]) * MAD_SCALE
    anomalies = sum(1 for v in values if mad and abs(v - centre) / mad > ANOMALY_Z)
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
        anomalies=anomalies,
    )


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
