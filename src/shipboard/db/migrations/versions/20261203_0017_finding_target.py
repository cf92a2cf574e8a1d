"""Finding identities are scoped by what was scanned: a target column beside environment, scan
type and tool (an image, a path, an artifact name), part of the identity's unique key.

Existing identities get the target of the requested scan that last saw them (scan_requests
knows it); the rest — imported reports — keep NULL, which the lifecycle reads as "from before
targets": the next scan of the same environment, type and tool that sees one adopts it into its
own target with its triage, and until then such a scan may resolve it, as it could before.

Downgrade drops the target; identities that then share a fingerprint in one environment, type
and tool (the same finding in two targets) keep the one seen last.

Revision ID: 20261203_0017
Revises: 20261203_0016
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "20261203_0017"
down_revision = "20261203_0016"
branch_labels = None
depends_on = None

OLD = "finding_identities_environment_scan_type_tool_fingerprint_key"
# The name the convention would give is longer than PostgreSQL's 63 characters.
NEW = "finding_identities_scope_fingerprint_key"


def upgrade() -> None:
    with op.batch_alter_table("finding_identities") as batch:
        batch.add_column(sa.Column("target", sa.Text()))
        batch.drop_constraint(OLD, type_="unique")
        batch.create_unique_constraint(
            NEW, ["environment", "scan_type", "tool", "target", "fingerprint"]
        )
    op.execute(
        """
        UPDATE finding_identities SET target = (
            SELECT scan_requests.target FROM security_findings
            JOIN scan_requests ON scan_requests.scan_id = security_findings.scan_id
            WHERE security_findings.id = finding_identities.latest_finding_id
        )
        WHERE target IS NULL
        """
    )


def downgrade() -> None:
    op.execute(
        """
        DELETE FROM finding_identities WHERE EXISTS (
            SELECT 1 FROM finding_identities AS later
            WHERE later.environment = finding_identities.environment
            AND later.scan_type = finding_identities.scan_type
            AND later.tool = finding_identities.tool
            AND later.fingerprint = finding_identities.fingerprint
            AND (later.last_seen_at > finding_identities.last_seen_at
                 OR (later.last_seen_at = finding_identities.last_seen_at
                     AND later.id > finding_identities.id))
        )
        """
    )
    with op.batch_alter_table("finding_identities") as batch:
        batch.drop_constraint(NEW, type_="unique")
        batch.create_unique_constraint(OLD, ["environment", "scan_type", "tool", "fingerprint"])
        batch.drop_column("target")
