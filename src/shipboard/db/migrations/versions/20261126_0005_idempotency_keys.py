"""Idempotency keys for batch ingest: a retried batch is stored once.

Revision ID: 20261126_0005
Revises: 20261126_0004
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipboard.db.types import SQLITE_NOW, JSONType, UTCDateTime

revision = "20261126_0005"
down_revision = "20261126_0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    now = sa.text("now()") if pg else sa.text(SQLITE_NOW)
    op.create_table(
        "idempotency_keys",
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("request_hash", sa.Text(), nullable=False),
        sa.Column("response", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime(), server_default=now, nullable=False),
        sa.PrimaryKeyConstraint("scope", "key", name=op.f("idempotency_keys_pkey")),
    )
    op.create_index("ix_idempotency_keys_created_at", "idempotency_keys", ["created_at"])
    if pg:
        op.execute("GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO shipboard_app")


def downgrade() -> None:
    op.drop_table("idempotency_keys")
