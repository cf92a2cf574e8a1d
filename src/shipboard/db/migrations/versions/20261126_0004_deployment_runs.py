"""Deployment runs: pipeline snapshot, gates, analysis, approval and the worker's lease.

Revision ID: 20261126_0004
Revises: 20261126_0003
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipboard.db.types import GUID, JSONType, UTCDateTime

revision = "20261126_0004"
down_revision = "20261126_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    false = sa.text("false") if pg else sa.text("0")
    op.create_table(
        "deployment_runs",
        sa.Column("deployment_id", GUID(), nullable=False),
        sa.Column("managed", sa.Boolean(), nullable=False),
        sa.Column("pipeline", JSONType),
        sa.Column("commit_timestamp", UTCDateTime()),
        sa.Column("forced", sa.Boolean(), server_default=false, nullable=False),
        sa.Column("gate_results", JSONType),
        sa.Column("analysis", JSONType),
        sa.Column("needs_approval", sa.Boolean(), server_default=false, nullable=False),
        sa.Column("approved_by", sa.Text()),
        sa.Column("approved_at", UTCDateTime()),
        sa.Column("started_at", UTCDateTime()),
        sa.Column("deploy_started_at", UTCDateTime()),
        sa.Column("verify_started_at", UTCDateTime()),
        sa.Column("verify_time", sa.Integer()),
        sa.Column("lease_owner", sa.Text()),
        sa.Column("lease_expires_at", UTCDateTime()),
        sa.Column("cancel_requested_by", sa.Text()),
        sa.Column("watch_state", sa.Text()),
        sa.Column("watch_next_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("deployment_id", name=op.f("deployment_runs_pkey")),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployment_configs.id"],
            ondelete="CASCADE",
            name=op.f("deployment_runs_deployment_id_fkey"),
        ),
    )
    op.create_index("ix_deployment_runs_lease", "deployment_runs", ["lease_expires_at"])
    op.create_index("ix_deployment_runs_watch", "deployment_runs", ["watch_state", "watch_next_at"])
    if pg:
        op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON deployment_runs TO shipboard_app")


def downgrade() -> None:
    op.drop_table("deployment_runs")
