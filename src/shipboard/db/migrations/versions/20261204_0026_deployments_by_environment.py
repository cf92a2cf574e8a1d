"""Deployments of one environment, newest first, from an index.

The list filtered by environment (the API's ``?environment=``, each card of the overview page)
used the spec's ``(environment, status)`` index and then sorted every deployment of the
environment to return 50: with 10,000 deployments the overview page spent two thirds of its
time in three such sorts.

Revision ID: 20261204_0026
Revises: 20261204_0025
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261204_0026"
down_revision = "20261204_0025"
branch_labels = None
depends_on = None

INDEX = "ix_deployment_configs_environment_created_at"


def upgrade() -> None:
    op.create_index(
        INDEX, "deployment_configs", ["environment", sa.text("created_at DESC"), sa.text("id DESC")]
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="deployment_configs")
