"""Alert rules, the alerts they raise, and silences."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shipboard.core.time import utcnow
from shipboard.db.base import Base
from shipboard.db.types import GUID, JSONType, NumberType, UTCDateTime


class AlertRule(Base):
    __tablename__ = "alert_rules"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('threshold', 'anomaly', 'promql')", name="kind"),
        sa.CheckConstraint("severity IN ('low', 'medium', 'high', 'critical')", name="severity"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(sa.Text, nullable=False)
    environment: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("environments.name"), nullable=False
    )
    # The metric a threshold or anomaly rule reads; NULL for a promql rule (its query is in spec).
    metric: Mapped[str | None] = mapped_column(sa.Text)
    # The rule's settings as the API accepted them (agg, window_s, op, value, for_s, method,
    # query …).
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


class ExternalAlert(Base):
    """An alert another system raised, received from Alertmanager's webhook (v4): one row per
    Alertmanager fingerprint, updated as it fires and resolves (alerting/external.py)."""

    __tablename__ = "external_alerts"
    __table_args__ = (sa.Index("ix_external_alerts_environment_status", "environment", "status"),)

    fingerprint: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    alertname: Mapped[str] = mapped_column(sa.Text, nullable=False)
    status: Mapped[str] = mapped_column(sa.Text, nullable=False)  # firing | resolved
    # The environment its labels name (SHIPBOARD_ALERTMANAGER_ENVIRONMENT_LABELS), if any.
    environment: Mapped[str | None] = mapped_column(sa.Text)
    labels: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False, default=dict)
    annotations: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False, default=dict)
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    generator_url: Mapped[str | None] = mapped_column(sa.Text)
    receiver: Mapped[str | None] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
