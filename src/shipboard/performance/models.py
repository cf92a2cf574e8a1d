from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shipboard.core.time import utcnow
from shipboard.db.base import Base
from shipboard.db.types import GUID, JSONType, NumberType, UTCDateTime


class PerformanceMetric(Base):
    __tablename__ = "performance_metrics"
    __table_args__ = (
        sa.Index("idx_performance_metrics_name_timestamp", "name", sa.text("timestamp DESC")),
        sa.Index("idx_performance_metrics_environment", "environment", sa.text("timestamp DESC")),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.Text, nullable=False)
    environment: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("environments.name"), nullable=False
    )
    timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    value: Mapped[float] = mapped_column(NumberType, nullable=False)
    unit: Mapped[str] = mapped_column(sa.Text, nullable=False)
    tags: Mapped[dict[str, str] | None] = mapped_column(JSONType, default=dict)
    benchmark: Mapped[float | None] = mapped_column(NumberType)
    threshold: Mapped[float | None] = mapped_column(NumberType)


REGRESSION_STATUSES = ("open", "resolved")


class PerformanceRegression(Base):
    """A benchmark series found worse than its baseline. At most one row per series is open; it
    is updated while the series stays regressed and resolved by the first result that is not."""

    __tablename__ = "performance_regressions"
    __table_args__ = (
        sa.CheckConstraint("status IN ('open', 'resolved')", name="status"),
        sa.Index("ix_performance_regressions_series", "environment", "series_key", "status"),
        sa.Index("ix_performance_regressions_version", "environment", "version", "status"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    environment: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("environments.name"), nullable=False
    )
    name: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # name + tags without version/commit: the identity of a benchmark across runs.
    series_key: Mapped[str] = mapped_column(sa.Text, nullable=False)
    tags: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False)
    unit: Mapped[str] = mapped_column(sa.Text, nullable=False)
    version: Mapped[str | None] = mapped_column(sa.Text)
    commit_sha: Mapped[str | None] = mapped_column(sa.Text)
    # No foreign key: performance_metrics is partitioned on PostgreSQL (primary key id+timestamp).
    metric_id: Mapped[uuid.UUID] = mapped_column(GUID, nullable=False)
    value: Mapped[float] = mapped_column(NumberType, nullable=False)
    current: Mapped[float] = mapped_column(NumberType, nullable=False)
    baseline: Mapped[float | None] = mapped_column(NumberType)
    delta_pct: Mapped[float | None] = mapped_column(NumberType)
    p_value: Mapped[float | None] = mapped_column(NumberType)
    model: Mapped[str] = mapped_column(sa.Text, nullable=False)
    direction: Mapped[str] = mapped_column(sa.Text, nullable=False)
    reason: Mapped[str] = mapped_column(sa.Text, nullable=False)
    status: Mapped[str] = mapped_column(sa.Text, nullable=False)
    detected_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
