from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.core.pagination import Page
from shipboard.db.engine import is_postgres
from shipboard.db.keyset import filter_by, keyset_page
from shipboard.performance.models import PerformanceMetric, PerformanceRegression
from shipboard.performance.schemas import PerformanceMetricFilter

# How far back one series' history is read. Tags are compared in Python (JSON equality is not
# portable), so several tag variants of one name share this budget.
HISTORY_ROWS = 2_000


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


def history(
    session: Session, *, environment: str, name: str, limit: int = HISTORY_ROWS
) -> list[PerformanceMetric]:
    """The newest results of one name in one environment, oldest first (ties by id, so the
    order is stable when a batch shares a timestamp)."""
    rows = session.scalars(
        sa.select(PerformanceMetric)
        .where(PerformanceMetric.environment == environment, PerformanceMetric.name == name)
        .order_by(PerformanceMetric.timestamp.desc(), PerformanceMetric.id.desc())
        .limit(limit)
    ).all()
    return list(reversed(rows))


def lock_series(session: Session, *, environment: str, series_key: str) -> None:
    """On PostgreSQL, hold a transaction lock on one series, so two ingests of it never both
    open a regression row. SQLite's single writer already orders them."""
    if is_postgres(session):
        session.execute(
            sa.select(
                sa.func.pg_advisory_xact_lock(sa.func.hashtext(f"perf:{environment}:{series_key}"))
            )
        )


def between(
    session: Session, *, environment: str, since: datetime, until: datetime
) -> Iterable[PerformanceMetric]:
    """Every result of an environment in ``[since, until)``, oldest first."""
    return session.scalars(
        sa.select(PerformanceMetric)
        .where(
            PerformanceMetric.environment == environment,
            PerformanceMetric.timestamp >= since,
            PerformanceMetric.timestamp < until,
        )
        .order_by(PerformanceMetric.timestamp, PerformanceMetric.id)
    )


def open_regression(
    session: Session, *, environment: str, series_key: str
) -> PerformanceRegression | None:
    return session.scalars(
        sa.select(PerformanceRegression).where(
            PerformanceRegression.environment == environment,
            PerformanceRegression.series_key == series_key,
            PerformanceRegression.status == "open",
        )
    ).first()


def regressions(
    session: Session,
    *,
    environment: str | None,
    version: str | None,
    status: str | None,
    name: str | None = None,
    limit: int = 1000,
) -> Sequence[PerformanceRegression]:
    stmt = sa.select(PerformanceRegression).order_by(
        PerformanceRegression.detected_at.desc(), PerformanceRegression.id
    )
    if environment:
        stmt = stmt.where(PerformanceRegression.environment == environment)
    if version:
        stmt = stmt.where(PerformanceRegression.version == version)
    if status:
        stmt = stmt.where(PerformanceRegression.status == status)
    if name:
        stmt = stmt.where(PerformanceRegression.name == name)
    return session.scalars(stmt.limit(limit)).all()


def open_regression_names(session: Session, *, environment: str, version: str) -> list[str]:
    return sorted(
        set(
            session.scalars(
                sa.select(PerformanceRegression.name).where(
                    PerformanceRegression.environment == environment,
                    PerformanceRegression.version == version,
                    PerformanceRegression.status == "open",
                )
            )
        )
    )


def get_regression(session: Session, regression_id: uuid.UUID) -> PerformanceRegression | None:
    return session.get(PerformanceRegression, regression_id)
