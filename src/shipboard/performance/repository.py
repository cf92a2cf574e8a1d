from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.core.pagination import Page
from shipboard.db.keyset import keyset_page
from shipboard.performance.models import PerformanceMetric
from shipboard.performance.schemas import PerformanceMetricFilter


def add_many(session: Session, rows: list[dict[str, Any]]) -> int:
    if rows:
        session.execute(sa.insert(PerformanceMetric), rows)
    return len(rows)


def page(
    session: Session, *, filters: PerformanceMetricFilter, cursor: str | None, limit: int
) -> Page[PerformanceMetric]:
    stmt = sa.select(PerformanceMetric)
    for column in ("name", "environment"):
        value = getattr(filters, column)
        if value is not None:
            stmt = stmt.where(getattr(PerformanceMetric, column) == value)
    if filters.since is not None:
        stmt = stmt.where(PerformanceMetric.timestamp >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(PerformanceMetric.timestamp < filters.until)
    return keyset_page(
        session,
        stmt,
        sort_col=PerformanceMetric.timestamp,
        id_col=PerformanceMetric.id,
        cursor=cursor,
        limit=limit,
    )
