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


class AlertRule(Base):
    __tablename__ = "alert_rules"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('threshold', 'anomaly')", name="kind"),
        sa.CheckConstraint("severity IN ('low', 'medium', 'high', 'critical')", name="severity"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(sa.Text, nullable=False)
    environment: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("environments.name"), nullable=False
    )
    metric: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # The rule's settings as the API accepted them (agg, window_s, op, value, for_s, method …).
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    severity: Mapped[str] = mapped_column(sa.Text, nullable=False)
    labels: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False, default=dict)
    annotations: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False, default=dict)
    channels: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    enabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    last_evaluated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (
        sa.CheckConstraint("state IN ('pending', 'firing', 'resolved')", name="state"),
        sa.Index("ix_alerts_rule_state", "rule_id", "state"),
        sa.Index("ix_alerts_fingerprint", "fingerprint"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    rule_id: Mapped[uuid.UUID] = mapped_column(
        GUID, sa.ForeignKey("alert_rules.id", ondelete="CASCADE"), nullable=False
    )
    fingerprint: Mapped[str] = mapped_column(sa.Text, nullable=False)
    state: Mapped[str] = mapped_column(sa.Text, nullable=False)
    value: Mapped[float | None] = mapped_column(NumberType)
    active_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_true_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    labels: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False)
    annotations: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False)
    transitions: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONType, nullable=False, default=list
    )
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class Silence(Base):
    __tablename__ = "silences"

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    matchers: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    created_by: Mapped[str] = mapped_column(sa.Text, nullable=False)
    comment: Mapped[str] = mapped_column(sa.Text, nullable=False)
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
