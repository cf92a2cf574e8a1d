"""Deployments recorded from GitHub/GitLab webhooks are triggered by ``github:<login>``.

Before, ``triggered_by`` held the provider's bare login, in the namespace of local user names, so
a local account named like the login could report statuses on those deployments. New records
are namespaced by the integrations service; this rewrites the ones already recorded (those
linked in ``integration_deployments``). Data only: the schema does not change.

Revision ID: 20261203_0014
Revises: 20261126_0013
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261203_0014"
down_revision = "20261126_0013"
branch_labels = None
depends_on = None

_KIND = (
    "(SELECT min(i.kind) FROM integration_deployments i"
    " WHERE i.deployment_id = deployment_configs.id)"
)


def upgrade() -> None:
    # Local user names cannot contain ":", so a value with one is already namespaced.
    op.execute(
        sa.text(
            f"UPDATE deployment_configs SET triggered_by = {_KIND} || ':' || triggered_by"
            " WHERE id IN (SELECT deployment_id FROM integration_deployments)"
            " AND triggered_by NOT LIKE '%:%'"
        )
    )


def downgrade() -> None:
    op.execute(
        sa.text(
            "UPDATE deployment_configs"
            f" SET triggered_by = substr(triggered_by, length({_KIND}) + 2)"
            " WHERE id IN (SELECT deployment_id FROM integration_deployments)"
            f" AND triggered_by LIKE {_KIND} || ':%'"
        )
    )
