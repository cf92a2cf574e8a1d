"""Integrations: GitHub/GitLab webhook configuration, provider deployment ids, deliveries.

Revision ID: 20261126_0011
Revises: 20261126_0010
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipboard.db.types import GUID, JSONType, UTCDateTime

revision = "20261126_0011"
down_revision = "20261126_0010"
branch_labels = None
depends_on = None

TABLES = ("integration_deliveries", "integration_deployments", "integrations")


def upgrade() -> None:
    op.create_table(
        "integrations",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("secret", sa.Text(), nullable=False),
        sa.Column("env_map", JSONType, nullable=False),
        sa.Column("deploy_workflow", sa.Text(), nullable=False),
        sa.Column("workflow_environment", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("updated_by", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("kind", name=op.f("integrations_pkey")),
        sa.CheckConstraint("kind IN ('github', 'gitlab')", name=op.f("integrations_kind_check")),
    )
    op.create_table(
        "integration_deployments",
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text(), nullable=False),
        sa.Column("deployment_id", GUID(), nullable=False),
        sa.Column("external_state", sa.Text()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "external_id", name=op.f("integration_deployments_pkey")),
        sa.UniqueConstraint(
            "deployment_id", name=op.f("integration_deployments_deployment_id_key")
        ),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployment_configs.id"],
            ondelete="CASCADE",
            name=op.f("integration_deployments_deployment_id_fkey"),
        ),
    )
    op.create_table(
        "integration_deliveries",
        sa.Column("id", GUID(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("event", sa.Text()),
        sa.Column("delivery_id", sa.Text()),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("external_id", sa.Text()),
        sa.Column("deployment_id", GUID()),
        sa.PrimaryKeyConstraint("id", name=op.f("integration_deliveries_pkey")),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployment_configs.id"],
            ondelete="SET NULL",
            name=op.f("integration_deliveries_deployment_id_fkey"),
        ),
        sa.CheckConstraint(
            "outcome IN ('recorded', 'updated', 'unchanged', 'duplicate', 'ignored', 'ping', "
            "'rejected', 'invalid')",
            name=op.f("integration_deliveries_outcome_check"),
        ),
    )
    op.create_index(
        "ix_integration_deliveries_kind_received_at",
        "integration_deliveries",
        ["kind", "received_at"],
    )
    op.create_index(
        "ix_integration_deliveries_kind_delivery_id",
        "integration_deliveries",
        ["kind", "delivery_id"],
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in TABLES:
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO shipboard_app")


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
