"""Reports delivered to stakeholders on a schedule (``config.reports``), through the notification
channels: email gets the HTML report inline and the CSV attached, webhooks the JSON, Slack a line.
Each is a recorded, retried notification delivery like any other."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import structlog
from croniter import croniter
from pydantic import BaseModel
from sqlalchemy.orm import Session

from shipboard.core.time import parse_duration
from shipboard.environments.config_sections import ReportSchedule
from shipboard.notifications import repository as notifications
from shipboard.notifications.delivery import enqueue
from shipboard.reports import documents, monitoring, performance, security, service

log = structlog.get_logger("shipboard.reports")
PAGES = {
    "dora": "/dora",
    "security": "/security",
    "monitoring": "/monitoring",
    "performance": "/performance",
}
TITLES = {
    "dora": "DORA metrics",
    "security": "Security report",
    "monitoring": "Monitoring report",
    "performance": "Performance report",
}


def due(schedule: ReportSchedule, *, last: datetime, now: datetime) -> bool:
    """Whether the schedule's cron fired in (last, now], read in the schedule's time zone."""
    local_now = now.astimezone(ZoneInfo(schedule.timezone))
    fired: datetime = croniter(schedule.cron, local_now).get_prev(datetime)
    if croniter.match(schedule.cron, local_now):  # get_prev skips a fire exactly at now
        fired = local_now.replace(second=0, microsecond=0)
    return last < fired <= now


def build(
    session: Session,
    *,
    environment: str,
    schedule: ReportSchedule,
    now: datetime,
    metrics: monitoring.StoreMetrics | None = None,
) -> dict[str, Any]:
    """The report as JSON, HTML and CSV; a monitoring report's metrics are ``metrics`` when the
    store was read."""
    period = parse_duration(schedule.period)
    kind = schedule.kind
    report: Any
    if kind == "dora":
        report = service.dora_report(
            session, environment=environment, since=now - period, until=now
        )
    elif kind == "performance":
        report = performance.performance_report(session, environment=environment, period=period)
    elif kind == "security":
        report = security.security_report(session, environment=environment)
    else:
        report = monitoring.monitoring_report(
            session, environment=environment, period=period, read=metrics
        )
    return {
        "json": report.model_dump(mode="json") if isinstance(report, BaseModel) else report,
        "html": documents.to_html(kind, report),
        "csv": documents.to_csv(kind, report),
    }


def deliver(
    session: Session,
    *,
    environment: str,
    schedule: ReportSchedule,
    now: datetime,
    metrics: monitoring.StoreMetrics | None = None,
) -> int:
    """Queue the report for each named channel; returns how many deliveries were queued. A
    monitoring report's metrics are ``metrics`` when the store was read (before this
    transaction: ``reports/tasks.py``)."""
    # Alertmanager channels take alerts only.
    channels = notifications.channels_named(session, schedule.channels, except_kind="alertmanager")
    missing = set(schedule.channels) - {c.name for c in channels}
    if missing:
        log.warning("report_channels_missing", environment=environment, channels=sorted(missing))
    if not channels:
        return 0
    rendered = build(session, environment=environment, schedule=schedule, now=now, metrics=metrics)
    title = f"{TITLES[schedule.kind]} — {environment}"
    payload = {
        "event": f"report.{schedule.kind}",
        "message": f"{title} ({schedule.period} to {now:%Y-%m-%d %H:%M} UTC)",
        "environment": environment,
        "kind": schedule.kind,
        "report": rendered["json"],
        # The same report on its web page (a path: the sender prefixes SHIPBOARD_PUBLIC_URL).
        "url": f"{PAGES[schedule.kind]}?{urlencode({'environment': environment})}",
        # Email only: the senders strip these from JSON bodies.
        "attachments": {
            "html": rendered["html"],
            "csv": {
                "filename": f"{schedule.kind}-{environment}-{now:%Y%m%d}.csv",
                "content": rendered["csv"],
            },
        },
    }
    for channel in channels:
        enqueue(session, channel=channel, event=payload["event"], payload=payload, now=now)
    return len(channels)


def schedules(config: dict[str, Any]) -> list[ReportSchedule]:
    """The environment's valid report schedules (the API validated them on write; a bad one
    written before that check is skipped with a warning rather than stopping the others)."""
    out = []
    entries = config.get("reports") or []
    if not isinstance(entries, list):
        log.warning("report_schedule_invalid", error="config.reports is not a list")
        return []
    for entry in entries:
        try:
            out.append(ReportSchedule.model_validate(entry))
        except ValueError as exc:
            log.warning("report_schedule_invalid", error=str(exc)[:300])
    return out
