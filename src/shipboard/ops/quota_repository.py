"""Every query of storage usage and quotas: which rows belong to an environment, how big a table
is on each backend, and the quota-crossing state kept on the environment's row."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from shipboard.db.engine import is_postgres
from shipboard.deployments.models import DeploymentConfig, DeploymentLog
from shipboard.environments.models import StorageQuotaAlert
from shipboard.monitoring.models import MonitoringMetric
from shipboard.performance.models import PerformanceMetric
from shipboard.security.models import SecurityFinding, SecurityScan

# The tables whose rows belong to one environment, and how a row finds its environment.


def _deployments_of(name: str) -> Any:
    return sa.select(DeploymentConfig.id).where(DeploymentConfig.environment == name)


def _scans_of(name: str) -> Any:
    return sa.select(SecurityScan.id).where(SecurityScan.environment == name)


_USAGE: dict[str, tuple[Any, Callable[[str], Any]]] = {
    "deployment_configs": (DeploymentConfig, lambda n: DeploymentConfig.environment == n),
    # Logs and findings carry no environment: theirs is their deployment's or scan's.
    "deployment_logs": (
        DeploymentLog,
        lambda n: DeploymentLog.deployment_id.in_(_deployments_of(n)),
    ),
    "monitoring_metrics": (MonitoringMetric, lambda n: MonitoringMetric.environment == n),
    "performance_metrics": (PerformanceMetric, lambda n: PerformanceMetric.environment == n),
    "security_scans": (SecurityScan, lambda n: SecurityScan.environment == n),
    "security_findings": (SecurityFinding, lambda n: SecurityFinding.scan_id.in_(_scans_of(n))),
}

USAGE_TABLES = tuple(_USAGE)


def count_rows(session: Session, table: str, environment: str | None = None) -> int:
    """Rows of ``table``: all of them, or those of ``environment``."""
    model, belongs = _USAGE[table]
    stmt = sa.select(sa.func.count()).select_from(model)
    if environment is not None:
        stmt = stmt.where(belongs(environment))
    return int(session.scalar(stmt) or 0)


def postgres_table_bytes(session: Session, table: str) -> int:
    """Heap, TOAST and indexes of ``table`` and, when it is partitioned, of every partition."""
    value = session.scalar(
        sa.text(
            "SELECT CASE WHEN c.relkind = 'p' THEN (SELECT coalesce(sum("
            "pg_total_relation_size(t.relid)), 0) FROM pg_partition_tree(c.oid) t) "
            "ELSE pg_total_relation_size(c.oid) END "
            "FROM pg_class c WHERE c.oid = CAST(:table AS regclass)"
        ),
        {"table": table},
    )
    return int(value or 0)


def sqlite_table_bytes(session: Session, table: str) -> int | None:
    """Pages of ``table`` and its indexes from ``dbstat``; None where SQLite lacks it."""
    try:
        with session.begin_nested():
            value = session.scalar(
                sa.text(
                    "SELECT coalesce(sum(pgsize), 0) FROM dbstat "
                    "WHERE aggregate = TRUE AND name IN "
                    "(SELECT name FROM sqlite_master WHERE tbl_name = :table "
                    "AND type IN ('table', 'index'))"
                ),
                {"table": table},
            )
    except sa.exc.OperationalError:
        return None
    return int(value or 0)


def sqlite_average_row_bytes(session: Session, table: str, *, sample: int = 1000) -> float:
    """Mean stored length of a row of ``table`` over a sample of rows (columns only: a lower
    bound that ignores page overhead and indexes)."""
    model, _ = _USAGE[table]
    columns = [c.name for c in model.__table__.columns]
    length = " + ".join(f'coalesce(length(CAST("{c}" AS BLOB)), 0)' for c in columns)
    value = session.scalar(
        sa.text(f'SELECT avg({length}) FROM (SELECT * FROM "{table}" LIMIT :n)'), {"n": sample}
    )
    return float(value or 0.0)


def mark_quota_crossed(session: Session, environment: str, *, over: bool, at: datetime) -> bool:
    """Record that ``environment``'s usage went over the alert line (``over``) or back below it;
    True only for the one check that changed the state. One statement on the environment's
    alert row (insert unless present, or delete), so two checks at once (leadership moving
    between nodes) cannot both see the same crossing."""
    if not over:
        deleted = session.scalars(
            sa.delete(StorageQuotaAlert)
            .where(StorageQuotaAlert.environment == environment)
            .returning(StorageQuotaAlert.environment)
        )
        return deleted.first() is not None
    insert = postgresql.insert if is_postgres(session) else sqlite.insert
    # RETURNING, not rowcount: a skipped conflict returns no row on both backends.
    inserted = session.scalars(
        insert(StorageQuotaAlert)
        .values(environment=environment, alerted_at=at)
        .on_conflict_do_nothing(index_elements=[StorageQuotaAlert.environment])
        .returning(StorageQuotaAlert.environment)
    )
    return inserted.first() is not None
