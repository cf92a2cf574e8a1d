"""Performance results: batch ingest and listing."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from shipboard.core.pagination import clamp_limit
from shipboard.core.time import utcnow
from shipboard.environments.service import require_known_environments
from shipboard.performance import repository
from shipboard.performance.schemas import (
    PerformanceMetricCreate,
    PerformanceMetricFilter,
    PerformanceMetricPage,
    PerformanceMetricRead,
)


def record_results(session: Session, *, metrics: list[PerformanceMetricCreate]) -> int:
    """Store a batch of results; an unknown environment rejects the batch."""
    require_known_environments(session, field="metrics", names=[m.environment for m in metrics])
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "name": m.name,
            "environment": m.environment,
            "timestamp": m.timestamp or now,
            "value": m.value,
            "unit": m.unit,
            "tags": m.tags,
            "benchmark": m.benchmark,
            "threshold": m.threshold,
        }
        for m in metrics
    ]
    return repository.add_many(session, rows)


def list_results(
    session: Session,
    *,
    filters: PerformanceMetricFilter,
    cursor: str | None = None,
    limit: int | None = None,
) -> PerformanceMetricPage:
    """Results newest first."""
    page = repository.page(session, filters=filters, cursor=cursor, limit=clamp_limit(limit))
    return PerformanceMetricPage(
        items=[PerformanceMetricRead.model_validate(m) for m in page.items],
        next_cursor=page.next_cursor,
    )
