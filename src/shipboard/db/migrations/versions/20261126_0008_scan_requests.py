"""Scan requests: what a worker should run for a pending scan.

Revision ID: 20261126_0008
Revises: 20261126_0007
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipboard.db.types import GUID

revision = "20261126_0008"
down_revision = "20261126_0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scan_requests",
        sa.Column("scan_id", GUID(), nullable=False),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("tool", sa.Text(), nullable=False),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("worker", sa.Text()),
        sa.PrimaryKeyConstraint("scan_id", name=op.f("scan_requests_pkey")),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["security_scans.id"],
            ondelete="CASCADE",
            name=op.f("scan_requests_scan_id_fkey"),
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON scan_requests TO shipboard_app")


def downgrade() -> None:
    op.drop_table("scan_requests")
