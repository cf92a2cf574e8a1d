"""The job runtime's schedule: each scheduled task's last run, next due time and claim.

These times were kept in memory by each process, so a restart skipped a scheduled report or
scan that fell due meanwhile, and a backup's claim was an audit event. Existing databases start
with an empty table: each task's row is made at its first look, from then on.

Revision ID: 20261203_0019
Revises: 20261203_0018
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipboard.db.types import UTCDateTime

revision = "20261203_0019"
down_revision = "20261203_0018"
branch_labels = None
depends_on = None

TABLE = "job_schedules"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("last_run_at", UTCDateTime()),
        sa.Column("next_due_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_by", sa.Text()),
        sa.Column("claimed_until", UTCDateTime()),
        sa.Column("last_error", sa.Text()),
        sa.PrimaryKeyConstraint("name", name=op.f("job_schedules_pkey")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO shipboard_app")


def downgrade() -> None:
    op.drop_table(TABLE)
