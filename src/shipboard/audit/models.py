from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shipboard.core.time import utcnow
from shipboard.db.base import Base
from shipboard.db.types import GUID, JSONType, UTCDateTime


class AuditEvent(Base):
    """Append-only: the database refuses UPDATE and DELETE on this table (triggers)."""

    __tablename__ = "audit_events"
    __table_args__ = (
        sa.Index("ix_audit_events_occurred_at", sa.text("occurred_at DESC")),
        sa.Index("ix_audit_events_actor", "actor"),
        sa.Index("ix_audit_events_action", "action"),
        sa.Index("ix_audit_events_target", "target_type", "target_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    actor: Mapped[str] = mapped_column(sa.Text, nullable=False)
    actor_role: Mapped[str | None] = mapped_column(sa.Text)
    action: Mapped[str] = mapped_column(sa.Text, nullable=False)
    target_type: Mapped[str | None] = mapped_column(sa.Text)
    target_id: Mapped[str | None] = mapped_column(sa.Text)
    source_ip: Mapped[str | None] = mapped_column(sa.Text)
    request_id: Mapped[str | None] = mapped_column(sa.Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
