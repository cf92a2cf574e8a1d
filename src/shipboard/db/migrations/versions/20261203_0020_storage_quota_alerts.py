"""Storage-quota alert state in a table of its own, not in the audit trail.

Whether an environment is over 90 % of its storage quota (so its channels were told once) was
read back from its latest ``storage.quota_exceeded``/``storage.quota_recovered`` audit event:
an audit row used as state. ``storage_quota_alerts`` now holds one row per environment that is
over, since when; the check inserts or deletes it in one statement per crossing. Environments
whose latest such event is a crossing start with their row, at that event's time, so the
upgrade does not alert them again.

Revision ID: 20261203_0020
Revises: 20261203_0019
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipboard.db.types import UTCDateTime

revision = "20261203_0020"
down_revision = "20261203_0019"
branch_labels = None
depends_on = None

TABLE = "storage_quota_alerts"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("alerted_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["environment"],
            ["environments.name"],
            name=op.f("storage_quota_alerts_environment_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("environment", name=op.f("storage_quota_alerts_pkey")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO shipboard_app")
        # Row-level security applies to the owner of audit_events too (FORCE): read as the system.
        op.execute(
            "SELECT set_config('shipboard.role', 'admin', true), "
            "set_config('shipboard.user_id', 'system', true)"
        )
    op.execute(
        f"""
        INSERT INTO {TABLE} (environment, alerted_at)
        SELECT latest.target_id, latest.occurred_at FROM audit_events AS latest
        JOIN environments ON environments.name = latest.target_id
        WHERE latest.target_type = 'environment'
        AND latest.action = 'storage.quota_exceeded'
        AND NOT EXISTS (
            SELECT 1 FROM audit_events AS later
            WHERE later.target_type = 'environment'
            AND later.target_id = latest.target_id
            AND later.action IN ('storage.quota_exceeded', 'storage.quota_recovered')
            AND (later.occurred_at > latest.occurred_at
                 OR (later.occurred_at = latest.occurred_at AND later.id > latest.id))
        )
        """
    )


def downgrade() -> None:
    op.drop_table(TABLE)
