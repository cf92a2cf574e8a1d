from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shipboard.core.time import utcnow
from shipboard.db.base import Base
from shipboard.db.types import GUID, JSONType, UTCDateTime


class NotificationChannel(Base):
    __tablename__ = "notification_channels"
    __table_args__ = (
        sa.CheckConstraint("kind IN ('webhook', 'slack', 'email', 'alertmanager')", name="kind"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    kind: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # Non-secret settings in clear; credentials (secret, password) Fernet-encrypted in `secrets`.
    config: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    secrets: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False, default=dict)
    group_by: Mapped[list[str]] = mapped_column(JSONType, nullable=False, default=list)
    group_wait_s: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=30)
    group_interval_s: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=300)
    repeat_interval_s: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=14400)
    send_resolved: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class NotificationGroup(Base):
    """Alertmanager's aggregation group: which alerts one channel last told about, and when."""

    __tablename__ = "notification_groups"

    channel_id: Mapped[uuid.UUID] = mapped_column(
        GUID, sa.ForeignKey("notification_channels.id", ondelete="CASCADE"), primary_key=True
    )
    group_key: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    group_labels: Mapped[dict[str, str]] = mapped_column(JSONType, nullable=False)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_sent_state: Mapped[dict[str, str] | None] = mapped_column(JSONType)


class NotificationDelivery(Base):
    __tablename__ = "notification_deliveries"
    __table_args__ = (
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        sa.Index("ix_notification_deliveries_due", "status", "next_attempt_at"),
        sa.Index("ix_notification_deliveries_channel", "channel_id", "created_at"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    channel_id: Mapped[uuid.UUID] = mapped_column(
        GUID, sa.ForeignKey("notification_channels.id", ondelete="CASCADE"), nullable=False
    )
    group_key: Mapped[str | None] = mapped_column(sa.Text)
    event: Mapped[str] = mapped_column(sa.Text, nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False)
    status: Mapped[str] = mapped_column(sa.Text, nullable=False, default="pending")
    attempts: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, nullable=False, default=list)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
