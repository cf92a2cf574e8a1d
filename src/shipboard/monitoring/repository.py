from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.core.pagination import Page
from shipboard.db import bulk
from shipboard.db.keyset import filter_by, keyset_page
from shipboard.monitoring.models import IdempotencyKey, MonitoringMetric
from shipboard.monitoring.schemas import MonitoringMetricFilter

POINT_COLUMNS = (
    bulk.Column("id", "uuid"),
    bulk.Column("name", "text"),
    bulk.Column("value", "float"),
    bulk.Column("timestamp", "timestamp"),
    bulk.Column("environment", "text"),
    bulk.Column("tags", "json"),
    bulk.Column("source", "text"),
)


def add_many(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert points in one statement; rows without an ``id`` get a new random one."""
    return bulk.insert(
        session,
        "monitoring_metrics",
        POINT_COLUMNS,
        [
            (
                r.get("id") or new_id,
                r["name"],
                r["value"],
                r["timestamp"],
                r["environment"],
                r["tags"] or {},
                r["source"],
            )
            for r, new_id in zip(rows, bulk.uuid4_strings(len(rows)), strict=True)
        ],
    )


def page(
    session: Session, *, filters: MonitoringMetricFilter, cursor: str | None, limit: int
) -> Page[MonitoringMetric]:
    stmt = filter_by(
        sa.select(MonitoringMetric),
        MonitoringMetric,
        filters,
        equal=("name", "environment", "source"),
        time_column="timestamp",
    )
    return keyset_page(
        session,
        stmt,
        sort_col=MonitoringMetric.timestamp,
        id_col=MonitoringMetric.id,
        cursor=cursor,
        limit=limit,
    )


def values(
    session: Session,
    *,
    environment: str,
    name: str,
    tags: dict[str, str],
    since: datetime,
    until: datetime,
) -> list[float]:
    """Values of one metric in [since, until), keeping points whose tags include ``tags``."""
    found = points(session, environment=environment, name=name, tags=tags, since=since, until=until)
    return [value for _, value in found]


def idempotency_get(session: Session, scope: str, key: str) -> IdempotencyKey | None:
    return session.get(IdempotencyKey, (scope, key))


def idempotency_put(
    session: Session, *, scope: str, key: str, request_hash: str, response: dict[str, Any]
) -> None:
    session.add(IdempotencyKey(scope=scope, key=key, request_hash=request_hash, response=response))
    session.flush()


def points(
    session: Session,
    *,
    environment: str | None,
    name: str,
    tags: dict[str, str],
    since: datetime,
    until: datetime,
) -> list[tuple[datetime, float]]:
    """(time, value) of one metric in [since, until), keeping points whose tags include ``tags``
    (tags are compared here, in Python, the same way on both backends)."""
    stmt = sa.select(
        MonitoringMetric.timestamp, MonitoringMetric.value, MonitoringMetric.tags
    ).where(
        MonitoringMetric.name == name,
        MonitoringMetric.timestamp >= since,
        MonitoringMetric.timestamp < until,
    )
    if environment is not None:
        stmt = stmt.where(MonitoringMetric.environment == environment)
    return [
        (t, float(v))
        for t, v, point_tags in session.execute(stmt).all()
        if t is not None and all((point_tags or {}).get(k) == val for k, val in tags.items())
    ]


def names(session: Session, *, environment: str | None) -> list[tuple[str, str, int]]:
    stmt = sa.select(MonitoringMetric.name, MonitoringMetric.source, sa.func.count()).group_by(
        MonitoringMetric.name, MonitoringMetric.source
    )
    if environment is not None:
        stmt = stmt.where(MonitoringMetric.environment == environment)
    return [(n, s, int(c)) for n, s, c in session.execute(stmt).all()]


def recent_tags(
    session: Session, *, environment: str | None, name: str, limit: int = 200
) -> list[dict[str, str]]:
    stmt = (
        sa.select(MonitoringMetric.tags)
        .where(MonitoringMetric.name == name)
        .order_by(MonitoringMetric.timestamp.desc())
        .limit(limit)
    )
    if environment is not None:
        stmt = stmt.where(MonitoringMetric.environment == environment)
    return [t or {} for t in session.scalars(stmt)]
