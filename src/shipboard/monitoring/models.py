from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shipboard.core.time import utcnow
from shipboard.db.base import Base
from shipboard.db.types import GUID, JSONType, NumberType, UTCDateTime


class MonitoringMetric(Base):
    __tablename__ = "monitoring_metrics"
    __table_args__ = (
        sa.Index("idx_monitoring_metrics_name_timestamp", "name", sa.text("timestamp DESC")),
        sa.Index("idx_monitoring_metrics_environment", "environment", sa.text("timestamp DESC")),
        sa.Index("idx_monitoring_metrics_source", "source"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.Text, nullable=False)
    value: Mapped[float] = mapped_column(NumberType, nullable=False)
    timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    environment: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("environments.name"), nullable=False
    )
    tags: Mapped[dict[str, str] | None] = mapped_column(JSONType, default=dict)
    source: Mapped[str] = mapped_column(sa.Text, nullable=False)


class IdempotencyKey(Base):
    """A batch already accepted under an ``Idempotency-Key``: its hash and the answer given."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (sa.Index("ix_idempotency_keys_created_at", "created_at"),)

    scope: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    key: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    request_hash: Mapped[str] = mapped_column(sa.Text, nullable=False)
    response: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
