"""Monitoring metrics: batch ingest and listing."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from shipboard.core.pagination import clamp_limit
from shipboard.core.time import utcnow
from shipboard.environments.service import require_known_environments
from shipboard.monitoring import repository
from shipboard.monitoring.schemas import (
    MonitoringMetricCreate,
    MonitoringMetricFilter,
    MonitoringMetricPage,
    MonitoringMetricRead,
)


def ingest_metrics(session: Session, *, metrics: list[MonitoringMetricCreate]) -> int:
    """Store a batch of points in one statement; an unknown environment rejects the batch."""
    require_known_environments(session, field="metrics", names=[m.environment for m in metrics])
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "name": m.name,
            "value": m.value,
            "timestamp": m.timestamp or now,
            "environment": m.environment,
            "tags": m.tags,
            "source": m.source,
        }
        for m in metrics
    ]
    return repository.add_many(session, rows)


def list_metrics(
    session: Session,
    *,
    filters: MonitoringMetricFilter,
    cursor: str | None = None,
    limit: int | None = None,
) -> MonitoringMetricPage:
    """Points newest first, filtered on name, environment, source and time."""
    page = repository.page(session, filters=filters, cursor=cursor, limit=clamp_limit(limit))
    return MonitoringMetricPage(
        items=[MonitoringMetricRead.model_validate(m) for m in page.items],
        next_cursor=page.next_cursor,
    )
