"""A covering index for the series query: one metric, one environment, a time range.

The spec's indexes lead with the name or with the environment alone, so a series scans every
point of the metric in all environments, or of every metric in the environment (the SQLite
planner, without statistics, picks the latter: ten times the rows on a host with ten metrics),
and then visits each row for its value. With (name, environment, timestamp, value) the query
reads exactly the points it returns, from the index alone. The spec's own indexes stay.

Revision ID: 20261126_0013
Revises: 20261126_0012
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "20261126_0013"
down_revision = "20261126_0012"
branch_labels = None
depends_on = None

NAME = "ix_monitoring_metrics_series"


def upgrade() -> None:
    # On PostgreSQL the index on the partitioned parent is created on every partition, and on
    # partitions made later.
    op.create_index(NAME, "monitoring_metrics", ["name", "environment", "timestamp", "value"])


def downgrade() -> None:
    op.drop_index(NAME, table_name="monitoring_metrics")
