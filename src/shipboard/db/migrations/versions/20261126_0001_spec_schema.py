"""The spec's seven tables, indexes, enum types, partitions and row-level security.

Revision ID: 20261126_0001
Revises:
Create Date: 2026-11-26
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from shipboard.db.partitions import create_default_partitions, ensure_partitions
from shipboard.db.types import GUID, SQLITE_NOW, SQLITE_UUID, JSONType, NumberType, UTCDateTime

revision = "20261126_0001"
down_revision = None
branch_labels = None
depends_on = None

APP_ROLE = "shipboard_app"

# The spec's initial migration creates these types; its tables keep TEXT + CHECK columns.
ENUM_TYPES = {
    "environment_type": ("development", "staging", "production"),
    "deployment_status": ("pending", "building", "deploying", "success", "failed", "rolled_back"),
    "alert_severity": ("low", "medium", "high", "critical"),
    "security_scan_type": ("dependency", "sast", "container", "iac"),
    "scan_status": ("pending", "running", "completed", "failed"),
    "log_level": ("debug", "info", "warn", "error"),
}

# The spec's rollback order.
TABLES_IN_DROP_ORDER = (
    "deployment_logs",
    "performance_metrics",
    "security_findings",
    "security_scans",
    "monitoring_metrics",
    "deployment_configs",
    "environments",
)

ROLE = "current_setting('shipboard.role', true)"
USER_ID = "current_setting('shipboard.user_id', true)"

# The spec's policies, with Supabase's auth.jwt()/auth.uid() replaced by the per-transaction
# settings Shipboard sets. Two additions, both from DESIGN.md: admins may update any deployment,
# and "System can manage" gets the USING (true) that its intent needs (a FOR ALL policy with only
# WITH CHECK would let the system insert rows it can then never update).
POLICIES = (
    ("environments", "Users can view all environments", "SELECT", "USING (true)"),
    ("environments", "Admin users can manage environments", "ALL", f"USING ({ROLE} = 'admin')"),
    ("deployment_configs", "Users can view deployments", "SELECT", "USING (true)"),
    (
        "deployment_configs",
        "Authorized users can create deployments",
        "INSERT",
        "WITH CHECK (true)",
    ),
    (
        "deployment_configs",
        "Users can update their deployments",
        "UPDATE",
        f"USING ({USER_ID} = triggered_by)",
    ),
    (
        "deployment_configs",
        "Admin users can manage deployments",
        "ALL",
        f"USING ({ROLE} = 'admin')",
    ),
    ("monitoring_metrics", "Users can view monitoring data", "SELECT", "USING (true)"),
    ("monitoring_metrics", "System can create monitoring data", "INSERT", "WITH CHECK (true)"),
    ("security_scans", "Users can view security scans", "SELECT", "USING (true)"),
    ("security_scans", "System can manage security scans", "ALL", "USING (true) WITH CHECK (true)"),
    ("security_findings", "Users can view security findings", "SELECT", "USING (true)"),
    (
        "security_findings",
        "System can manage security findings",
        "ALL",
        "USING (true) WITH CHECK (true)",
    ),
    ("performance_metrics", "Users can view performance metrics", "SELECT", "USING (true)"),
    ("performance_metrics", "System can create performance metrics", "INSERT", "WITH CHECK (true)"),
    ("deployment_logs", "Users can view deployment logs", "SELECT", "USING (true)"),
    ("deployment_logs", "System can create deployment logs", "INSERT", "WITH CHECK (true)"),
)


def _check_in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    now = sa.text("now()") if pg else sa.text(SQLITE_NOW)
    new_uuid = sa.text("gen_random_uuid()") if pg else sa.text(SQLITE_UUID)
    empty = sa.text("'{}'::jsonb") if pg else sa.text("'{}'")
    false = sa.text("false") if pg else sa.text("0")
    partitioned: dict[str, Any] = {"postgresql_partition_by": 'RANGE ("timestamp")'} if pg else {}

    def time_series_pk(table: str) -> sa.PrimaryKeyConstraint:
        # PostgreSQL requires the partition key in every unique constraint.
        columns = ("id", "timestamp") if pg else ("id",)
        return sa.PrimaryKeyConstraint(*columns, name=op.f(f"{table}_pkey"))

    if pg:
        for name, values in ENUM_TYPES.items():
            op.execute(f"CREATE TYPE {name} AS ENUM ({', '.join(repr(v) for v in values)})")

    op.create_table(
        "environments",
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("domain", sa.Text(), nullable=False),
        sa.Column("config", JSONType, nullable=False),
        sa.Column("secrets", JSONType, nullable=True),
        sa.Column("features", JSONType, server_default=empty),
        sa.Column("limits", JSONType, server_default=empty),
        sa.Column("created_at", UTCDateTime(), server_default=now),
        sa.Column("updated_at", UTCDateTime(), server_default=now),
        sa.PrimaryKeyConstraint("name", name=op.f("environments_pkey")),
    )
    statuses = ("pending", "building", "deploying", "success", "failed", "rolled_back")
    op.create_table(
        "deployment_configs",
        sa.Column("id", GUID(), server_default=new_uuid, nullable=False),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("version", sa.Text(), nullable=False),
        sa.Column("commit_sha", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("build_time", sa.Integer()),
        sa.Column("deploy_time", sa.Integer()),
        sa.Column("created_at", UTCDateTime(), server_default=now),
        sa.Column("completed_at", UTCDateTime()),
        sa.Column("triggered_by", sa.Text(), nullable=False),
        sa.Column("logs_url", sa.Text()),
        sa.Column("artifacts_url", sa.Text()),
        sa.Column("error_message", sa.Text()),
        sa.Column("rollback_from", GUID()),
        sa.PrimaryKeyConstraint("id", name=op.f("deployment_configs_pkey")),
        sa.ForeignKeyConstraint(
            ["environment"], ["environments.name"], name=op.f("deployment_configs_environment_fkey")
        ),
        sa.ForeignKeyConstraint(
            ["rollback_from"],
            ["deployment_configs.id"],
            name=op.f("deployment_configs_rollback_from_fkey"),
        ),
        sa.CheckConstraint(
            _check_in("status", statuses), name=op.f("deployment_configs_status_check")
        ),
    )
    op.create_table(
        "monitoring_metrics",
        sa.Column("id", GUID(), server_default=new_uuid, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("value", NumberType, nullable=False),
        sa.Column("timestamp", UTCDateTime(), server_default=now, nullable=not pg),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("tags", JSONType, server_default=empty),
        sa.Column("source", sa.Text(), nullable=False),
        time_series_pk("monitoring_metrics"),
        sa.ForeignKeyConstraint(
            ["environment"], ["environments.name"], name=op.f("monitoring_metrics_environment_fkey")
        ),
        **partitioned,
    )
    op.create_table(
        "security_scans",
        sa.Column("id", GUID(), server_default=new_uuid, nullable=False),
        sa.Column("type", sa.Text(), nullable=False),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("started_at", UTCDateTime(), server_default=now),
        sa.Column("completed_at", UTCDateTime()),
        sa.Column("summary", JSONType),
        sa.Column("error_message", sa.Text()),
        sa.PrimaryKeyConstraint("id", name=op.f("security_scans_pkey")),
        sa.ForeignKeyConstraint(
            ["environment"], ["environments.name"], name=op.f("security_scans_environment_fkey")
        ),
        sa.CheckConstraint(
            _check_in("type", ENUM_TYPES["security_scan_type"]),
            name=op.f("security_scans_type_check"),
        ),
        sa.CheckConstraint(
            _check_in("status", ENUM_TYPES["scan_status"]), name=op.f("security_scans_status_check")
        ),
    )
    op.create_table(
        "security_findings",
        sa.Column("id", GUID(), server_default=new_uuid, nullable=False),
        sa.Column("scan_id", GUID(), nullable=False),
        sa.Column("severity", sa.Text(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("location", sa.Text()),
        sa.Column("cwe_id", sa.Text()),
        sa.Column("remediation", sa.Text()),
        sa.Column("resolved", sa.Boolean(), server_default=false),
        sa.Column("resolved_at", UTCDateTime()),
        sa.Column("created_at", UTCDateTime(), server_default=now),
        sa.PrimaryKeyConstraint("id", name=op.f("security_findings_pkey")),
        sa.ForeignKeyConstraint(
            ["scan_id"],
            ["security_scans.id"],
            ondelete="CASCADE",
            name=op.f("security_findings_scan_id_fkey"),
        ),
        sa.CheckConstraint(
            _check_in("severity", ENUM_TYPES["alert_severity"]),
            name=op.f("security_findings_severity_check"),
        ),
    )
    op.create_table(
        "performance_metrics",
        sa.Column("id", GUID(), server_default=new_uuid, nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("environment", sa.Text(), nullable=False),
        sa.Column("timestamp", UTCDateTime(), server_default=now, nullable=not pg),
        sa.Column("value", NumberType, nullable=False),
        sa.Column("unit", sa.Text(), nullable=False),
        sa.Column("tags", JSONType, server_default=empty),
        sa.Column("benchmark", NumberType),
        sa.Column("threshold", NumberType),
        time_series_pk("performance_metrics"),
        sa.ForeignKeyConstraint(
            ["environment"],
            ["environments.name"],
            name=op.f("performance_metrics_environment_fkey"),
        ),
        **partitioned,
    )
    op.create_table(
        "deployment_logs",
        sa.Column("id", GUID(), server_default=new_uuid, nullable=False),
        sa.Column("deployment_id", GUID(), nullable=False),
        sa.Column("level", sa.Text(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("timestamp", UTCDateTime(), server_default=now, nullable=not pg),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("metadata", JSONType),
        time_series_pk("deployment_logs"),
        sa.ForeignKeyConstraint(
            ["deployment_id"],
            ["deployment_configs.id"],
            ondelete="CASCADE",
            name=op.f("deployment_logs_deployment_id_fkey"),
        ),
        sa.CheckConstraint(
            _check_in("level", ENUM_TYPES["log_level"]), name=op.f("deployment_logs_level_check")
        ),
        **partitioned,
    )

    indexes: tuple[tuple[str, str, list[Any]], ...] = (
        (
            "idx_deployment_configs_environment_status",
            "deployment_configs",
            ["environment", "status"],
        ),
        ("idx_deployment_configs_created_at", "deployment_configs", [sa.text("created_at DESC")]),
        ("idx_deployment_configs_commit_sha", "deployment_configs", ["commit_sha"]),
        ("idx_deployment_configs_triggered_by", "deployment_configs", ["triggered_by"]),
        (
            "idx_monitoring_metrics_name_timestamp",
            "monitoring_metrics",
            ["name", sa.text("timestamp DESC")],
        ),
        (
            "idx_monitoring_metrics_environment",
            "monitoring_metrics",
            ["environment", sa.text("timestamp DESC")],
        ),
        ("idx_monitoring_metrics_source", "monitoring_metrics", ["source"]),
        ("idx_security_scans_environment_status", "security_scans", ["environment", "status"]),
        ("idx_security_scans_started_at", "security_scans", [sa.text("started_at DESC")]),
        ("idx_security_scans_type", "security_scans", ["type"]),
        ("idx_security_findings_scan_severity", "security_findings", ["scan_id", "severity"]),
        ("idx_security_findings_created_at", "security_findings", [sa.text("created_at DESC")]),
        ("idx_security_findings_resolved", "security_findings", ["resolved", "severity"]),
        (
            "idx_performance_metrics_name_timestamp",
            "performance_metrics",
            ["name", sa.text("timestamp DESC")],
        ),
        (
            "idx_performance_metrics_environment",
            "performance_metrics",
            ["environment", sa.text("timestamp DESC")],
        ),
        ("idx_deployment_logs_deployment_id", "deployment_logs", ["deployment_id"]),
        ("idx_deployment_logs_timestamp", "deployment_logs", [sa.text("timestamp DESC")]),
        ("idx_deployment_logs_level", "deployment_logs", ["level"]),
    )
    for name, table, columns in indexes:
        op.create_index(name, table, columns)

    if pg:
        conn = op.get_bind()
        create_default_partitions(conn)
        ensure_partitions(conn, months_ahead=1)
        _create_app_role(TABLES_IN_DROP_ORDER)
        for table in TABLES_IN_DROP_ORDER:
            op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        for table, name, command, clause in POLICIES:
            op.execute(f'CREATE POLICY "{name}" ON {table} FOR {command} {clause}')


def _create_app_role(tables: tuple[str, ...]) -> None:
    op.execute(
        f"DO $$ BEGIN "
        f"IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{APP_ROLE}') THEN "
        f"CREATE ROLE {APP_ROLE} NOLOGIN; END IF; END $$"
    )
    # Whoever runs the app must be able to SET ROLE to it.
    op.execute(f"GRANT {APP_ROLE} TO CURRENT_USER")
    op.execute(f"GRANT USAGE ON SCHEMA public TO {APP_ROLE}")
    for table in tables:
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {APP_ROLE}")


def downgrade() -> None:
    pg = op.get_bind().dialect.name == "postgresql"
    for table in TABLES_IN_DROP_ORDER:
        op.drop_table(table)
    if pg:
        for name in reversed(ENUM_TYPES):
            op.execute(f"DROP TYPE IF EXISTS {name}")
        op.execute(f"DROP OWNED BY {APP_ROLE}")
        # The role is cluster-wide: another database of this cluster may still use it.
        op.execute(
            f"DO $$ BEGIN DROP ROLE IF EXISTS {APP_ROLE}; "
            f"EXCEPTION WHEN dependent_objects_still_exist THEN NULL; END $$"
        )
