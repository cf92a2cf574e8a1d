"""Finding identities across scans, and the link from each finding row to its identity.

Revision ID: 20261126_0007
Revises: 20261126_0006
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipboard.db.types import GUID, UTCDateTime

revision = "20261126_0007"
down_revision = "20261126_0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    false = sa.text("false") if pg else sa.text("0")
    op.create_table(
        "finding_identities",
        sa.Column("id", GUID(), nullable=False),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("scan_type", sa.Text(), nullable=False),
        sa.Column("tool", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("rule_id", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime()),
        sa.Column("reopened_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("latest_finding_id", GUID()),
        sa.Column("triage_status", sa.Text()),
        sa.Column("triage_reason", sa.Text()),
        sa.Column("triaged_by", sa.Text()),
        sa.Column("triage_expires_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name=op.f("finding_identities_pkey")),
        sa.ForeignKeyConstraint(
            ["environment"], ["environments.name"], name=op.f("finding_identities_environment_fkey")
        ),
        sa.UniqueConstraint(
            "environment",
            "scan_type",
            "tool",
            "fingerprint",
            name=op.f("finding_identities_environment_scan_type_tool_fingerprint_key"),
        ),
        sa.CheckConstraint(
            "status IN ('open', 'resolved')", name=op.f("finding_identities_status_check")
        ),
        sa.CheckConstraint(
            "triage_status IS NULL OR triage_status IN ('fixed', 'false_positive', 'accepted_risk')",
            name=op.f("finding_identities_triage_status_check"),
        ),
    )
    op.create_table(
        "finding_occurrences",
        sa.Column("finding_id", GUID(), nullable=False),
        sa.Column("identity_id", GUID(), nullable=False),
        sa.Column("occurrences", sa.Integer(), server_default=sa.text("1"), nullable=False),
        sa.Column("reopened", sa.Boolean(), server_default=false, nullable=False),
        sa.Column("suppressed", sa.Boolean(), server_default=false, nullable=False),
        sa.PrimaryKeyConstraint("finding_id", name=op.f("finding_occurrences_pkey")),
        sa.ForeignKeyConstraint(
            ["finding_id"],
            ["security_findings.id"],
            ondelete="CASCADE",
            name=op.f("finding_occurrences_finding_id_fkey"),
        ),
        sa.ForeignKeyConstraint(
            ["identity_id"],
            ["finding_identities.id"],
            ondelete="CASCADE",
            name=op.f("finding_occurrences_identity_id_fkey"),
        ),
    )
    if pg:
        for table in ("finding_identities", "finding_occurrences"):
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO shipboard_app")


def downgrade() -> None:
    op.drop_table("finding_occurrences")
    op.drop_table("finding_identities")
