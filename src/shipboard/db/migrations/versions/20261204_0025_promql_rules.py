"""Alert rules of kind promql: a query of the user's Prometheus-compatible store instead of a
metric of Shipboard's own tables. ``kind`` admits 'promql' and ``metric`` may be NULL (a promql
rule's query lives in ``spec``).

SQLite cannot change a CHECK constraint or a column's NULL-ability in place: the table is
rebuilt (batch mode). With foreign keys on, dropping the old table would cascade to ``alerts``
(ON DELETE CASCADE) and PRAGMA foreign_keys cannot be turned off inside the migration's
transaction, so the alerts are copied aside first and put back after. (env.py now runs SQLite
migrations with foreign keys off, so the rebuild no longer cascades; the copy stays as released,
a no-op that costs one copy of the alerts.)

Downgrade deletes the promql rules (their alerts go with them): the older schema cannot hold
them.

Revision ID: 20261204_0025
Revises: 20261203_0024
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261204_0025"
down_revision = "20261203_0024"
branch_labels = None
depends_on = None

CHECK = "alert_rules_kind_check"
KEPT = "_alerts_kept_0025"


def _rebuild(kinds: str, *, metric_nullable: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.execute(f"CREATE TEMP TABLE {KEPT} AS SELECT * FROM alerts")
    with op.batch_alter_table("alert_rules", recreate="always" if sqlite else "auto") as batch:
        batch.drop_constraint(op.f(CHECK), type_="check")
        batch.create_check_constraint(op.f(CHECK), f"kind IN ({kinds})")
        batch.alter_column("metric", existing_type=sa.Text(), nullable=metric_nullable)
    if sqlite:
        op.execute("DELETE FROM alerts")  # what the cascade left, if anything
        op.execute(f"INSERT INTO alerts SELECT * FROM {KEPT}")
        op.execute(f"DROP TABLE {KEPT}")


def upgrade() -> None:
    _rebuild("'threshold', 'anomaly', 'promql'", metric_nullable=True)


def downgrade() -> None:
    op.execute(
        "DELETE FROM alerts WHERE rule_id IN (SELECT id FROM alert_rules WHERE kind = 'promql')"
    )
    op.execute("DELETE FROM alert_rules WHERE kind = 'promql'")
    _rebuild("'threshold', 'anomaly'", metric_nullable=False)
