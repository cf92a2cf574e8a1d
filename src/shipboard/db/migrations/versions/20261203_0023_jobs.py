"""The job runtime's queue: one table of jobs, claimed under a lease.

Requested scans were claimed straight from security_scans with no lease, so a scan whose worker
died stayed ``running`` for ever. Each pending requested scan gets its job here.

Revision ID: 20261203_0023
Revises: 20261203_0022
Create Date: 2026-12-03
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

from shipboard.core.time import utcnow
from shipboard.db.types import GUID, JSONType, UTCDateTime

revision = "20261203_0023"
down_revision = "20261203_0022"
branch_labels = None
depends_on = None

TABLE = "jobs"


def upgrade() -> None:
    jobs = op.create_table(
        TABLE,
        sa.Column("id", GUID(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("run_after", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.Text()),
        sa.Column("lease_expires_at", UTCDateTime()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name=op.f("jobs_pkey")),
        sa.CheckConstraint(
            "status IN ('queued', 'running', 'done', 'failed')", name=op.f("jobs_status_check")
        ),
    )
    op.create_index("ix_jobs_status_run_after", TABLE, ["status", "run_after"])
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {TABLE} TO shipboard_app")
    pending = op.get_bind().execute(
        sa.text(
            "SELECT security_scans.id FROM security_scans JOIN scan_requests "
            "ON scan_requests.scan_id = security_scans.id "
            "WHERE security_scans.status = 'pending'"
        )
    )
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "kind": "security.scan",
            "payload": {"scan_id": str(scan_id)},
            "status": "queued",
            "run_after": now,
            "attempts": 0,
            "max_attempts": 3,
            "created_at": now,
        }
        for (scan_id,) in pending
    ]
    if rows:
        op.bulk_insert(jobs, rows)


def downgrade() -> None:
    op.drop_index("ix_jobs_status_run_after", table_name=TABLE)
    op.drop_table(TABLE)
