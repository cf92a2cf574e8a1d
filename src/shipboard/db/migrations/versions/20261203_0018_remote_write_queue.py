"""The remote-write queue: points waiting for the user's Prometheus-compatible store.

A batch is written here in the same transaction that acknowledges it to the client, and removed
only once the store has answered 2xx (or refused it for good), so the store being down loses
nothing that was acknowledged (issue 23).

Revision ID: 20261203_0018
Revises: 20261203_0017
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipboard.db.types import GUID, UTCDateTime

revision = "20261203_0018"
down_revision = "20261203_0017"
branch_labels = None
depends_on = None

TABLE = "remote_write_queue"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("id", GUID(), primary_key=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("enqueued_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text()),
        sa.Column("dropped_at", UTCDateTime()),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO shipboard_app")


def downgrade() -> None:
    op.drop_table(TABLE)
