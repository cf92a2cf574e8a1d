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
        # Not in the spec: covers the series query (migration 0013 says why).
        sa.Index("ix_monitoring_metrics_series", "name", "environment", "timestamp", "value"),
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


class OtlpCumulativeState(Base):
    """The last cumulative OTLP point of each series, which the next one is subtracted from
    (monitoring/temporality.py). One row per series; ``key`` hashes its identity."""

    __tablename__ = "otlp_cumulative_state"
    __table_args__ = (sa.Index("ix_otlp_cumulative_state_updated_at", "updated_at"),)

    key: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    # fixed64 nanoseconds: past a signed 64-bit column's range, so kept as decimal text.
    start_ns: Mapped[str] = mapped_column(sa.Text, nullable=False)
    time_ns: Mapped[str] = mapped_column(sa.Text, nullable=False)
    reading: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class RemoteWriteBatch(Base):
    """Points waiting to be remote-written to the user's store (monitoring/forwarding.py): one
    row per ingested batch, written in the ingest's own transaction, so a point acknowledged to
    a client is on disk until the store has taken it. ``payload`` is the encoded WriteRequest."""

    __tablename__ = "remote_write_queue"

    # Time-ordered (uuid7): the oldest batch goes first, as remote write wants samples in order.
    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True)
    payload: Mapped[bytes] = mapped_column(sa.LargeBinary, nullable=False)
    points: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    size: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    enqueued_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    attempts: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    # Set when the store refused the batch for good: kept a day (payload emptied) so /metrics
    # can count what was dropped whichever node it asks.
    dropped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
