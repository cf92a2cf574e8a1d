"""Storage usage and quotas of environments: rows and estimated bytes per table, and the alert
when an environment's usage passes 90 % of ``limits.storage_quota_gb``.

Here, not in environments: measuring usage reads the tables of the domains built on
environments (deployments, monitoring, performance, security)."""

from __future__ import annotations

from urllib.parse import quote

from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.core.time import utcnow
from shipboard.db.engine import is_postgres
from shipboard.environments import repository as environments
from shipboard.environments.service import require_environment
from shipboard.environments.validation import stored_mapping
from shipboard.notifications.service import notify_environment
from shipboard.ops import quota_repository as repository
from shipboard.ops.schemas import EnvironmentUsage, TableUsage

GIB = 1024**3
QUOTA_ALERT_AT = 0.9


def storage_usage(session: Session, *, name: str) -> EnvironmentUsage:
    """Rows and estimated bytes per table of one environment, against its storage quota.

    Bytes are the table's size (indexes and TOAST included, every partition on PostgreSQL, from
    ``pg_total_relation_size``; SQLite's ``dbstat`` pages) times the environment's share of the
    table's rows. Without ``dbstat``, SQLite falls back to the mean row length × rows."""
    environment = require_environment(session, name)
    postgres = is_postgres(session)
    sized = postgres or repository.sqlite_table_bytes(session, "environments") is not None
    if postgres:
        method = "pg_total_relation_size of the table × the environment's share of its rows"
    elif sized:
        method = "dbstat pages of the table and its indexes × the environment's share of its rows"
    else:
        method = "mean stored row length × rows (this SQLite has no dbstat)"
    tables: list[TableUsage] = []
    for table in repository.USAGE_TABLES:
        rows = repository.count_rows(session, table, name)
        if not rows:
            estimate = 0
        elif sized:
            size = (
                repository.postgres_table_bytes(session, table)
                if postgres
                else repository.sqlite_table_bytes(session, table)
            )
            total = repository.count_rows(session, table)
            estimate = (size or 0) * rows // max(total, 1)
        else:
            estimate = int(repository.sqlite_average_row_bytes(session, table) * rows)
        tables.append(TableUsage(table=table, rows=rows, bytes=estimate))
    used = sum(t.bytes for t in tables)
    quota = stored_mapping(environment.limits).get("storage_quota_gb")
    quota_bytes = int(quota * GIB) if isinstance(quota, int | float) and quota > 0 else None
    return EnvironmentUsage(
        environment=name,
        tables=tables,
        rows=sum(t.rows for t in tables),
        bytes=used,
        quota_bytes=quota_bytes,
        used_pct=round(100 * used / quota_bytes, 2) if quota_bytes else None,
        method=method,
        measured_at=utcnow(),
    )


def check_storage_quotas(session: Session, *, audit_context: AuditContext) -> list[str]:
    """Tell an environment's channels (event ``storage.quota``) when its usage passes 90 % of
    ``limits.storage_quota_gb`` — once per crossing: a row of ``storage_quota_alerts`` says since
    when it is over, and only the check that inserts (or deletes) that row alerts.
    The crossing and the return below are audited (``storage.quota_exceeded`` and
    ``storage.quota_recovered``) as records of what happened. Returns the environments that
    crossed upwards now."""
    crossed: list[str] = []
    for environment in environments.list_all(session):
        quota = stored_mapping(environment.limits).get("storage_quota_gb")
        if not isinstance(quota, int | float) or quota <= 0:
            continue
        usage = storage_usage(session, name=environment.name)
        over = usage.bytes >= QUOTA_ALERT_AT * (usage.quota_bytes or 0)
        if not repository.mark_quota_crossed(session, environment.name, over=over, at=utcnow()):
            continue
        details = {
            "used_bytes": usage.bytes,
            "quota_bytes": usage.quota_bytes,
            "used_pct": usage.used_pct,
        }
        audit.record(
            session,
            context=audit_context,
            action="storage.quota_exceeded" if over else "storage.quota_recovered",
            target_type="environment",
            target_id=environment.name,
            details=details,
        )
        if over:
            notify_environment(
                session,
                environment_config=stored_mapping(environment.config),
                event="storage.quota",
                message=(
                    f"{environment.name} uses {usage.used_pct:.1f} % of its storage quota "
                    f"({usage.bytes} of {usage.quota_bytes} bytes)"
                ),
                details={"environment": environment.name, **details},
                link=f"/environments/{quote(environment.name)}",
            )
            crossed.append(environment.name)
    return crossed
