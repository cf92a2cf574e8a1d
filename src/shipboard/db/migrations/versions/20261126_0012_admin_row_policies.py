"""Admin DELETE and UPDATE policies on the time-series tables, for retention and erasure.

The spec's policies admit SELECT and INSERT on monitoring_metrics, performance_metrics and
deployment_logs, and nothing else. Row-level security is forced, so for a database user that is
neither a superuser nor BYPASSRLS (the right way to run in production), retention's deletes and a
user erasure's rewrites would affect no row and raise nothing. These policies admit exactly the
system jobs, which act as the admin role.

Revision ID: 20261126_0012
Revises: 20261126_0011
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision = "20261126_0012"
down_revision = "20261126_0011"
branch_labels = None
depends_on = None

TABLES = ("monitoring_metrics", "performance_metrics", "deployment_logs")
ADMIN = "current_setting('shipboard.role', true) = 'admin'"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(
            f'CREATE POLICY "Admins can delete {table}" ON {table} FOR DELETE USING ({ADMIN})'
        )
        op.execute(
            f'CREATE POLICY "Admins can rewrite {table}" ON {table} '
            f"FOR UPDATE USING ({ADMIN}) WITH CHECK ({ADMIN})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f'DROP POLICY IF EXISTS "Admins can rewrite {table}" ON {table}')
        op.execute(f'DROP POLICY IF EXISTS "Admins can delete {table}" ON {table}')
