"""Scan imports in progress: one row per scope (environment, scan type, tool, target) while a
large report is written in chunks, each its own transaction, so that a second import of the
same scope is refused (409) instead of interleaving its chunks, and one whose process died is
recognised by its lapsed lease and cleaned up.

Revision ID: 20261203_0024
Revises: 20261203_0023
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipboard.db.types import GUID, UTCDateTime

revision = "20261203_0024"
down_revision = "20261203_0023"
branch_labels = None
depends_on = None

TABLE = "security_imports"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("scan_id", GUID(), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("scope", name=op.f("security_imports_pkey")),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["security_scans.id"],
            ondelete="CASCADE",
            name=op.f("security_imports_scan_id_fkey"),
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO shipboard_app")


def downgrade() -> None:
    op.drop_table(TABLE)
