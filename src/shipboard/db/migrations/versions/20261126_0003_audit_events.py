"""Append-only audit events.

Revision ID: 20261126_0003
Revises: 20261126_0002
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipboard.db.types import GUID, SQLITE_NOW, SQLITE_UUID, JSONType, UTCDateTime

revision = "20261126_0003"
down_revision = "20261126_0002"
branch_labels = None
depends_on = None

REFUSAL = "audit_events is append-only"


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    now = sa.text("now()") if pg else sa.text(SQLITE_NOW)
    new_uuid = sa.text("gen_random_uuid()") if pg else sa.text(SQLITE_UUID)
    op.create_table(
        "audit_events",
        sa.Column("id", GUID(), server_default=new_uuid, nullable=False),
        sa.Column("occurred_at", UTCDateTime(), server_default=now, nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("actor_role", sa.Text()),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("target_type", sa.Text()),
        sa.Column("target_id", sa.Text()),
        sa.Column("source_ip", sa.Text()),
        sa.Column("request_id", sa.Text()),
        sa.Column("details", JSONType),
        sa.PrimaryKeyConstraint("id", name=op.f("audit_events_pkey")),
    )
    op.create_index("ix_audit_events_occurred_at", "audit_events", [sa.text("occurred_at DESC")])
    op.create_index("ix_audit_events_actor", "audit_events", ["actor"])
    op.create_index("ix_audit_events_action", "audit_events", ["action"])
    op.create_index("ix_audit_events_target", "audit_events", ["target_type", "target_id"])
    if pg:
        # The trigger binds every role, superusers included; the grant keeps the app role honest.
        op.execute(
            "CREATE FUNCTION audit_events_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN RAISE EXCEPTION '{REFUSAL}' USING ERRCODE = 'insufficient_privilege'; END $$"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_refuse_change()"
        )
        op.execute("GRANT SELECT, INSERT ON audit_events TO shipboard_app")
    else:
        for event in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{event.lower()} BEFORE {event} ON audit_events "
                f"BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END"
            )


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    op.drop_table("audit_events")
    if pg:
        op.execute("DROP FUNCTION IF EXISTS audit_events_refuse_change()")
