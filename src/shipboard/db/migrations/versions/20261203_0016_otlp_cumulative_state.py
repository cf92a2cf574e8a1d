"""The last cumulative OTLP point of each series, so cumulative exports are stored per interval.

Cumulative histograms and sums were stored as received: their counts and quantiles described the
exporter's whole lifetime, and a series exported cumulative and one exported delta meant
different things under one name. Each new cumulative point is now stored as what it adds to the
previous one of its series, which this table keeps (in the database, not in memory: every node
may receive the next export, and a restart must not turn a lifetime total into one interval).

Revision ID: 20261203_0016
Revises: 20261203_0015
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipboard.db.types import JSONType, UTCDateTime

revision = "20261203_0016"
down_revision = "20261203_0015"
branch_labels = None
depends_on = None

TABLE = "otlp_cumulative_state"


def upgrade() -> None:
    op.create_table(
        TABLE,
        sa.Column("key", sa.Text(), primary_key=True),
        sa.Column("start_ns", sa.Text(), nullable=False),
        sa.Column("time_ns", sa.Text(), nullable=False),
        sa.Column("reading", JSONType, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_otlp_cumulative_state_updated_at", TABLE, ["updated_at"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO shipboard_app")


def downgrade() -> None:
    op.drop_index("ix_otlp_cumulative_state_updated_at", table_name=TABLE)
    op.drop_table(TABLE)
