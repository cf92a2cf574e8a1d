"""Alerts other systems raised, received from Alertmanager's webhook (issue 23 §3).

Revision ID: 20261203_0022
Revises: 20261203_0021
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipboard.db.types import JSONType, UTCDateTime

revision = "20261203_0022"
down_revision = "20261203_0021"
branch_labels = None
depends_on = None

TABLE = "external_alerts"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("fingerprint", sa.Text(), primary_key=True),
        sa.Column("alertname", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("environment", sa.Text()),
        sa.Column("labels", JSONType, nullable=False),
        sa.Column("annotations", JSONType, nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime()),
        sa.Column("generator_url", sa.Text()),
        sa.Column("receiver", sa.Text()),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_external_alerts_environment_status", TABLE, ["environment", "status"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO shipboard_app")


def downgrade() -> None:
    op.drop_index("ix_external_alerts_environment_status", table_name=TABLE)
    op.drop_table(TABLE)
