"""Alert rules, alerts, silences, notification channels, groups and deliveries.

Revision ID: 20261126_0006
Revises: 20261126_0005
Create Date: 2026-11-26
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from shipboard.db.types import GUID, JSONType, NumberType, UTCDateTime

revision = "20261126_0006"
down_revision = "20261126_0005"
branch_labels = None
depends_on = None

TABLES = (
    "notification_deliveries",
    "notification_groups",
    "notification_channels",
    "silences",
    "alerts",
    "alert_rules",
)


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    true = sa.text("true") if pg else sa.text("1")
    op.create_table(
        "alert_rules",
        sa.Column("id", GUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("metric", sa.Text(), nullable=False),
        sa.Column("spec", JSONType, nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("labels", JSONType, nullable=False),
        sa.Column("annotations", JSONType, nullable=False),
        sa.Column("channels", JSONType, nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default=true, nullable=False),
        sa.Column("last_evaluated_at", UTCDateTime()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("alert_rules_pkey")),
        sa.UniqueConstraint("name", name=op.f("alert_rules_name_key")),
        sa.ForeignKeyConstraint(
            ["environment"], ["environments.name"], name=op.f("alert_rules_environment_fkey")
        ),
        sa.CheckConstraint("kind IN ('threshold', 'anomaly')", name=op.f("alert_rules_kind_check")),
        sa.CheckConstraint(
            "severity IN ('low', 'medium', 'high', 'critical')",
            name=op.f("alert_rules_severity_check"),
        ),
    )
    op.create_table(
        "alerts",
        sa.Column("id", GUID(), nullable=False),
        sa.Column("rule_id", GUID(), nullable=False),
        sa.Column("fingerprint", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("value", NumberType),
        sa.Column("active_since", UTCDateTime()),
        sa.Column("starts_at", UTCDateTime()),
        sa.Column("ends_at", UTCDateTime()),
        sa.Column("last_true_at", UTCDateTime()),
        sa.Column("labels", JSONType, nullable=False),
        sa.Column("annotations", JSONType, nullable=False),
        sa.Column("transitions", JSONType, nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("alerts_pkey")),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["alert_rules.id"], ondelete="CASCADE", name=op.f("alerts_rule_id_fkey")
        ),
        sa.CheckConstraint(
            "state IN ('pending', 'firing', 'resolved')", name=op.f("alerts_state_check")
        ),
    )
    op.create_index("ix_alerts_rule_state", "alerts", ["rule_id", "state"])
    op.create_index("ix_alerts_fingerprint", "alerts", ["fingerprint"])
    op.create_table(
        "silences",
        sa.Column("id", GUID(), nullable=False),
        sa.Column("matchers", JSONType, nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("silences_pkey")),
    )
    op.create_table(
        "notification_channels",
        sa.Column("id", GUID(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("secrets", JSONType, nullable=False),
        sa.Column("group_by", JSONType, nullable=False),
        sa.Column("group_wait_s", sa.Integer(), nullable=False),
        sa.Column("group_interval_s", sa.Integer(), nullable=False),
        sa.Column("repeat_interval_s", sa.Integer(), nullable=False),
        sa.Column("send_resolved", sa.Boolean(), server_default=true, nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("notification_channels_pkey")),
        sa.UniqueConstraint("name", name=op.f("notification_channels_name_key")),
        sa.CheckConstraint(
            "kind IN ('webhook', 'slack', 'email', 'alertmanager')",
            name=op.f("notification_channels_kind_check"),
        ),
    )
    op.create_table(
        "notification_groups",
        sa.Column("channel_id", GUID(), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("group_labels", JSONType, nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_sent_at", UTCDateTime()),
        sa.Column("last_sent_state", JSONType),
        sa.PrimaryKeyConstraint("channel_id", "group_key", name=op.f("notification_groups_pkey")),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["notification_channels.id"],
            ondelete="CASCADE",
            name=op.f("notification_groups_channel_id_fkey"),
        ),
    )
    op.create_table(
        "notification_deliveries",
        sa.Column("id", GUID(), nullable=False),
        sa.Column("channel_id", GUID(), nullable=False),
        sa.Column("group_key", sa.Text()),
        sa.Column("event", sa.Text(), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("attempts", JSONType, nullable=False),
        sa.Column("next_attempt_at", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime()),
        sa.PrimaryKeyConstraint("id", name=op.f("notification_deliveries_pkey")),
        sa.ForeignKeyConstraint(
            ["channel_id"],
            ["notification_channels.id"],
            ondelete="CASCADE",
            name=op.f("notification_deliveries_channel_id_fkey"),
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')",
            name=op.f("notification_deliveries_status_check"),
        ),
    )
    op.create_index(
        "ix_notification_deliveries_due", "notification_deliveries", ["status", "next_attempt_at"]
    )
    op.create_index(
        "ix_notification_deliveries_channel",
        "notification_deliveries",
        ["channel_id", "created_at"],
    )
    if pg:
        for table in TABLES:
            op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO shipboard_app")


def downgrade() -> None:
    for table in TABLES:
        op.drop_table(table)
