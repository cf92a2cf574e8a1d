"""The monitoring report: per metric, its range, trend and anomalies; the alerts and how fast
they were resolved."""

from __future__ import annotations

import io
import statistics
from datetime import datetime, timedelta
from html import escape
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.orm import Session

from shipboard.core.csvsafe import dict_writer
from shipboard.core.time import utcnow
from shipboard.monitoring.alerting import MAD_SCALE
from shipboard.monitoring.models import Alert, AlertRule, MonitoringMetric
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
    rows = session.execute(
        sa.select(Alert, AlertRule.name)
        .join(AlertRule, AlertRule.id == Alert.rule_id)
        .where(
            AlertRule.environment == environment, Alert.starts_at >= since, Alert.starts_at < until
        )
    ).all()
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


def to_csv(report: MonitoringReport) -> str:
    out = io.StringIO()
    fields: list[str] = list(MetricSummary.model_fields)
    writer = dict_writer(out, fieldnames=fields)
    writer.writeheader()
    for metric in report.metrics:
        row: dict[str, Any] = metric.model_dump()
        writer.writerow(row)
    return out.getvalue()


def to_html(report: MonitoringReport) -> str:
    def num(value: float | None) -> str:
        return "—" if value is None else f"{value:.4g}"

    rows = "".join(
        f"<tr><td>{escape(m.name)}</td><td>{m.points}</td><td>{num(m.min)}</td>"
        f"<td>{num(m.avg)}</td><td>{num(m.p95)}</td><td>{num(m.max)}</td>"
        f"<td>{escape(m.trend)}</td><td>{m.anomalies}</td></tr>"
        for m in report.metrics
    )
    alerts = report.alerts
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Monitoring report — {escape(report.environment)}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border-bottom:1px solid #ddd;padding:.3em .6em;text-align:left}"
        "@media print{body{margin:0}}</style></head><body>"
        f"<h1>Monitoring report — {escape(report.environment)}</h1>"
        f"<p>{report.since:%Y-%m-%d %H:%M} to {report.until:%Y-%m-%d %H:%M} UTC. "
        f"Alerts fired: {alerts.fired}, resolved: {alerts.resolved}, median time to resolve: "
        f"{num(alerts.median_time_to_resolve_s)} s.</p>"
        "<table><tr><th>metric</th><th>points</th><th>min</th><th>avg</th><th>p95</th>"
        f"<th>max</th><th>trend</th><th>anomalies</th></tr>{rows}</table></body></html>"
    )
