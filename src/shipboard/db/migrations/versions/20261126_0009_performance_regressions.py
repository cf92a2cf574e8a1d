"""Performance regressions: one row per detected regression of a benchmark series; and the
outcome a deployment had before a rollback changed its status (DORA needs it).

Revision ID: 20261126_0009
Revises: 20261126_0008
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipboard.db.types import GUID, JSONType, NumberType, UTCDateTime

revision = "20261126_0009"
down_revision = "20261126_0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "performance_regressions",
        sa.Column("id", GUID(), nullable=False),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("series_key", sa.Text(), nullable=False),
        sa.Column("tags", JSONType, nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("version", sa.Text()),
        sa.Column("commit_sha", sa.Text()),
        sa.Column("metric_id", GUID(), nullable=False),
        sa.Column("value", NumberType, nullable=False),
        sa.Column("current", NumberType, nullable=False),
        sa.Column("baseline", NumberType),
        sa.Column("delta_pct", NumberType),
        sa.Column("p_value", NumberType),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("direction", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("detected_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name=op.f("performance_regressions_pkey")),
        sa.ForeignKeyConstraint(
            ["environment"],
            ["environments.name"],
            name=op.f("performance_regressions_environment_fkey"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'resolved')", name=op.f("performance_regressions_status_check")
        ),
    )
    op.create_index(
        "ix_performance_regressions_series",
        "performance_regressions",
        ["environment", "series_key", "status"],
    )
    op.create_index(
        "ix_performance_regressions_version",
        "performance_regressions",
        ["environment", "version", "status"],
    )
    with op.batch_alter_table("deployment_runs") as batch:
        batch.add_column(sa.Column("outcome", sa.Text()))
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "GRANT SELECT, INSERT, UPDATE, DELETE ON performance_regressions TO shipboard_app"
        )


def downgrade() -> None:
    with op.batch_alter_table("deployment_runs") as batch:
        batch.drop_column("outcome")
    op.drop_table("performance_regressions")
