from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shipboard.core.time import utcnow
from shipboard.db.base import Base, check_in
from shipboard.db.types import GUID, JSONType, UTCDateTime

DEPLOYMENT_STATUSES = ("pending", "building", "deploying", "success", "failed", "rolled_back")
LOG_LEVELS = ("debug", "info", "warn", "error")


class DeploymentConfig(Base):
    __tablename__ = "deployment_configs"
    __table_args__ = (
        sa.CheckConstraint(check_in("status", DEPLOYMENT_STATUSES), name="status"),
        sa.Index("idx_deployment_configs_environment_status", "environment", "status"),
        sa.Index("idx_deployment_configs_created_at", sa.text("created_at DESC")),
        sa.Index("idx_deployment_configs_commit_sha", "commit_sha"),
        sa.Index("idx_deployment_configs_triggered_by", "triggered_by"),
        # Beyond the spec: one environment's deployments newest first (docs/data-model.md).
        sa.Index(
            "ix_deployment_configs_environment_created_at",
            "environment",
            sa.text("created_at DESC"),
            sa.text("id DESC"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    environment: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("environments.name"), nullable=False
    )
    version: Mapped[str] = mapped_column(sa.Text, nullable=False)
    commit_sha: Mapped[str] = mapped_column(sa.Text, nullable=False)
    status: Mapped[str] = mapped_column(sa.Text, nullable=False)
    build_time: Mapped[int | None] = mapped_column(sa.Integer)
    deploy_time: Mapped[int | None] = mapped_column(sa.Integer)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    triggered_by: Mapped[str] = mapped_column(sa.Text, nullable=False)
    logs_url: Mapped[str | None] = mapped_column(sa.Text)
    artifacts_url: Mapped[str | None] = mapped_column(sa.Text)
    error_message: Mapped[str | None] = mapped_column(sa.Text)
    rollback_from: Mapped[uuid.UUID | None] = mapped_column(
        GUID, sa.ForeignKey("deployment_configs.id")
    )


class DeploymentLog(Base):
    __tablename__ = "deployment_logs"
    __table_args__ = (
        sa.CheckConstraint(check_in("level", LOG_LEVELS), name="level"),
        sa.Index("idx_deployment_logs_deployment_id", "deployment_id"),
        sa.Index("idx_deployment_logs_timestamp", sa.text("timestamp DESC")),
        sa.Index("idx_deployment_logs_level", "level"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    deployment_id: Mapped[uuid.UUID] = mapped_column(
        GUID, sa.ForeignKey("deployment_configs.id", ondelete="CASCADE"), nullable=False
    )
    level: Mapped[str] = mapped_column(sa.Text, nullable=False)
    message: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # Part of the primary key on PostgreSQL, where the table is partitioned by it.
    timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    source: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # "metadata" is reserved on declarative classes; the column keeps the spec's name.
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSONType)


class DeploymentRun(Base):
    """Shipboard's bookkeeping for one deployment, beside the spec's row: how it is run (or
    reported), its gates and analysis with their numbers, approval, and the worker's lease."""

    __tablename__ = "deployment_runs"
    __table_args__ = (
        sa.Index("ix_deployment_runs_lease", "lease_expires_at"),
        sa.Index("ix_deployment_runs_watch", "watch_state", "watch_next_at"),
    )

    deployment_id: Mapped[uuid.UUID] = mapped_column(
        GUID, sa.ForeignKey("deployment_configs.id", ondelete="CASCADE"), primary_key=True
    )
    managed: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    # The environment's pipeline when the deployment was made, as the redaction shows it; its
    # credentials (step env values, a healthcheck URL's password) sealed in `pipeline_secrets`.
    pipeline: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    pipeline_secrets: Mapped[dict[str, str] | None] = mapped_column(JSONType)
    commit_timestamp: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # success or failed, as first reached: a later rollback overwrites the status, and DORA must
    # still tell a deployment that failed from one that succeeded and was then rolled back.
    outcome: Mapped[str | None] = mapped_column(sa.Text)
    forced: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    gate_results: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    analysis: Mapped[list[dict[str, Any]] | None] = mapped_column(JSONType)
    needs_approval: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    approved_by: Mapped[str | None] = mapped_column(sa.Text)
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deploy_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verify_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    verify_time: Mapped[int | None] = mapped_column(sa.Integer)
    lease_owner: Mapped[str | None] = mapped_column(sa.Text)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancel_requested_by: Mapped[str | None] = mapped_column(sa.Text)
    # The post-deploy watch: running / passed / failed / stopped, and when it is next due.
    watch_state: Mapped[str | None] = mapped_column(sa.Text)
    watch_next_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
