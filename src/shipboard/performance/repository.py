from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.core.pagination import Page
from shipboard.db.keyset import filter_by, keyset_page
from shipboard.performance.models import PerformanceMetric
from shipboard.performance.schemas import PerformanceMetricFilter


def add_many(session: Session, rows: list[dict[str, Any]]) -> int:
    if rows:
        session.execute(sa.insert(PerformanceMetric), rows)
    return len(rows)


def page(
    session: Session, *, filters: PerformanceMetricFilter, cursor: str | None, limit: int
) -> Page[PerformanceMetric]:
    stmt = filter_by(
        sa.select(PerformanceMetric),
        PerformanceMetric,
        filters,
        equal=("name", "environment"),
        time_column="timestamp",
    )
    return keyset_page(
        session,
        stmt,
        sort_col=PerformanceMetric.timestamp,
        id_col=PerformanceMetric.id,
        cursor=cursor,
        limit=limit,
    )
