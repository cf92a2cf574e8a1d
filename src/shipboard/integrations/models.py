from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shipboard.core.time import utcnow
from shipboard.db.base import Base, check_in
from shipboard.db.types import GUID, JSONType, UTCDateTime

KINDS = ("github", "gitlab")
OUTCOMES = (
    "recorded",
    "updated",
    "unchanged",
    "duplicate",
    "ignored",
    "ping",
    "rejected",
    "invalid",
)


class Integration(Base):
    """One configured webhook source per kind; its secret is Fernet-encrypted."""

    __tablename__ = "integrations"
    __table_args__ = (sa.CheckConstraint(check_in("kind", KINDS), name="kind"),)

    kind: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    secret: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # Their environment name -> ours; names not in it map to themselves when they are ours.
    env_map: Mapped[dict[str, Any]] = mapped_column(JSONType, nullable=False, default=dict)
    deploy_workflow: Mapped[str] = mapped_column(sa.Text, nullable=False)
    workflow_environment: Mapped[str] = mapped_column(sa.Text, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_by: Mapped[str] = mapped_column(sa.Text, nullable=False)


class IntegrationDeployment(Base):
    """Which of our deployments records a provider's deployment (the provider's id is the key)."""

    __tablename__ = "integration_deployments"

    kind: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    external_id: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    deployment_id: Mapped[uuid.UUID] = mapped_column(
        GUID,
        sa.ForeignKey("deployment_configs.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    )
    # The provider's own word for the last state it reported (GitHub's `queued`, GitLab's
    # `canceled`), kept because ours folds several of theirs together.
    external_state: Mapped[str | None] = mapped_column(sa.Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)


class IntegrationDelivery(Base):
    """Every webhook request received, with what became of it (never its body)."""

    __tablename__ = "integration_deliveries"
    __table_args__ = (
        sa.CheckConstraint(check_in("outcome", OUTCOMES), name="outcome"),
        sa.Index("ix_integration_deliveries_kind_received_at", "kind", "received_at"),
        sa.Index("ix_integration_deliveries_kind_delivery_id", "kind", "delivery_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    kind: Mapped[str] = mapped_column(sa.Text, nullable=False)
    event: Mapped[str | None] = mapped_column(sa.Text)
    delivery_id: Mapped[str | None] = mapped_column(sa.Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    status_code: Mapped[int] = mapped_column(sa.Integer, nullable=False)
    outcome: Mapped[str] = mapped_column(sa.Text, nullable=False)
    detail: Mapped[str] = mapped_column(sa.Text, nullable=False)
    external_id: Mapped[str | None] = mapped_column(sa.Text)
    deployment_id: Mapped[uuid.UUID | None] = mapped_column(
        GUID, sa.ForeignKey("deployment_configs.id", ondelete="SET NULL")
    )
