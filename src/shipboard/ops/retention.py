"""Retention of metrics and deployment logs, per environment.

Each environment keeps metrics (``monitoring_metrics``, ``performance_metrics``) for
``limits.metrics_retention_days`` (default 90) and deployment logs for
``limits.logs_retention_days`` (default 365). The last cumulative OTLP point of a series
(``otlp_cumulative_state``) goes once it is older than the longest metrics horizon, and so does
an alert received from Alertmanager (``external_alerts``) that Alertmanager has not mentioned
since: it resends a firing alert every ``repeat_interval`` (hours), so one that silent is over,
and whichever environment its labels name is decided when it is read, so no one environment's
horizon is its own.

Partitions are per table, not per environment, so on PostgreSQL a monthly partition is dropped
only once it lies wholly past the *longest* horizon of every environment sharing the table;
anything younger that one environment no longer wants is deleted row by row. Rows go in batches
of at most ``BATCH`` rows, each batch its own short transaction, so ingest and API requests
wait at most one batch for SQLite's single write lock (or for PostgreSQL's row locks).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from shipboard.alerting.models import ExternalAlert
from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.core.time import utcnow
from shipboard.db.engine import is_postgres, system_transaction
from shipboard.db.partitions import ensure_partitions, month_start
from shipboard.db.rls import require_unblocked
from shipboard.deployments.models import DeploymentConfig, DeploymentLog
from shipboard.environments import repository as environments
from shipboard.environments.validation import stored_mapping
from shipboard.monitoring.models import MonitoringMetric, OtlpCumulativeState
from shipboard.performance.models import PerformanceMetric

log = structlog.get_logger("shipboard.retention")

Kind = Literal["metrics", "logs"]
DEFAULT_DAYS: dict[Kind, int] = {"metrics": 90, "logs": 365}
LIMIT_KEYS: dict[Kind, str] = {"metrics": "metrics_retention_days", "logs": "logs_retention_days"}
BATCH = 10_000
MONTHS_AHEAD = 2
# The tables retention trims, and which horizon applies to each.
TABLES: dict[str, Kind] = {
    "monitoring_metrics": "metrics",
    "performance_metrics": "metrics",
    "deployment_logs": "logs",
}
CUMULATIVE_STATE = "otlp_cumulative_state"
EXTERNAL_ALERTS = "external_alerts"
_MODELS: dict[str, Any] = {
    "monitoring_metrics": MonitoringMetric,
    "performance_metrics": PerformanceMetric,
    "deployment_logs": DeploymentLog,
}


@dataclass
class RetentionReport:
    dry_run: bool
    horizons: dict[str, dict[str, int]]
    dropped_partitions: list[str] = field(default_factory=list)
    deleted: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys([*TABLES, CUMULATIVE_STATE, EXTERNAL_ALERTS], 0)
    )
    created_partitions: list[str] = field(default_factory=list)

    @property
    def removed_anything(self) -> bool:
        return bool(self.dropped_partitions) or any(self.deleted.values())


def retention_days(limits: object, kind: Kind) -> int:
    """An environment's horizon in days for ``kind``; the default when unset or not positive
    (or when the stored limits are not an object at all)."""
    value = stored_mapping(limits).get(LIMIT_KEYS[kind])
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    return DEFAULT_DAYS[kind]


def horizons(session: Session) -> dict[str, dict[str, int]]:
    """Days kept per environment and kind."""
    return {
        e.name: {kind: retention_days(e.limits, kind) for kind in DEFAULT_DAYS}
        for e in environments.list_all(session)
    }


def enforce(
    engine: Engine,
    *,
    now: datetime | None = None,
    dry_run: bool = False,
    batch_size: int = BATCH,
    audit_context: AuditContext | None = None,
) -> RetentionReport:
    """Drop expired partitions (PostgreSQL), delete expired rows in batches, create the coming
    months' partitions; with ``dry_run`` only count what would go."""
    now = now or utcnow()
    with system_transaction(engine) as session:
        report = RetentionReport(dry_run=dry_run, horizons=horizons(session))
        postgres = is_postgres(session)
        if not dry_run:
            require_unblocked(session, tables=list(TABLES), command="DELETE", what="retention")
    if not report.horizons:
        return report
    for table, kind in TABLES.items():
        cutoffs = {env: now - timedelta(days=days[kind]) for env, days in report.horizons.items()}
        dropped: list[tuple[datetime, datetime]] = []
        if postgres:
            dropped, complete = _drop_partitions(engine, table, min(cutoffs.values()), report)
            if not complete:
                # The partition left behind goes whole next time, not row by row now.
                continue
        for environment, cutoff in sorted(cutoffs.items()):
            report.deleted[table] += _delete_expired(
                engine, table, environment, cutoff, dropped, report.dry_run, batch_size
            )
    # The last cumulative OTLP point of a series silent past every metrics horizon: the next
    # export of such a series (if any) counts again from its start time.
    longest = now - timedelta(days=max(days["metrics"] for days in report.horizons.values()))
    for name, key, updated_at in (
        (CUMULATIVE_STATE, OtlpCumulativeState.key, OtlpCumulativeState.updated_at),
        (EXTERNAL_ALERTS, ExternalAlert.fingerprint, ExternalAlert.updated_at),
    ):
        report.deleted[name] = _forget(
            engine, key, updated_at < longest, report.dry_run, batch_size
        )
    if postgres and not dry_run:
        try:
            with system_transaction(engine) as session:
                report.created_partitions = ensure_partitions(
                    session.connection(), today=now.date(), months_ahead=MONTHS_AHEAD
                )
        except DBAPIError as exc:
            # Typically rows of that month already sit in the default partition; retention
            # itself is done, and the next run tries again.
            log.warning("partition_create_failed", error=str(exc.orig)[:300])
    if report.removed_anything and not dry_run:
        with system_transaction(engine) as session:
            audit.record(
                session,
                context=audit_context or AuditContext(actor="retention", actor_role="admin"),
                action="retention.run",
                target_type="database",
                details={
                    "dropped_partitions": report.dropped_partitions,
                    "deleted": report.deleted,
                    "horizons": report.horizons,
                },
            )
    if not dry_run:  # a dry run changed nothing; its report is the command's output, not an event
        log.info(
            "retention_done",
            dropped=report.dropped_partitions,
            deleted=report.deleted,
            created=report.created_partitions,
        )
    return report


def _forget(
    engine: Engine,
    key: Any,
    condition: sa.ColumnElement[bool],
    dry_run: bool,
    batch_size: int,
) -> int:
    """Delete, a batch at a time, the rows of ``key``'s table that ``condition`` selects."""
    table = key.class_
    stale = sa.select(key).where(condition)
    if dry_run:
        with system_transaction(engine) as session:
            return int(
                session.execute(
                    sa.select(sa.func.count()).select_from(stale.subquery())
                ).scalar_one()
            )
    removed = 0
    while True:
        with system_transaction(engine) as session:
            keys = list(session.scalars(stale.limit(batch_size)))
            if not keys:
                return removed
            session.execute(sa.delete(table).where(key.in_(keys)))
        removed += len(keys)


_PARTITION = re.compile(r"^(?P<table>[a-z_]+)_(?P<year>\d{4})_(?P<month>\d{2})$")


def monthly_partitions(session: Session, table: str) -> list[tuple[str, date]]:
    """The monthly partitions of ``table`` with their first day, oldest first (the default
    partition and anything not named by ``db.partitions`` are left out)."""
    names = session.scalars(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = CAST(:table AS regclass)"
        ),
        {"table": table},
    )
    found = []
    for name in names:
        match = _PARTITION.match(name)
        if match and match["table"] == table:
            found.append((name, date(int(match["year"]), int(match["month"]), 1)))
    return sorted(found, key=lambda item: item[1])


def _drop_partitions(
    engine: Engine, table: str, longest_cutoff: datetime, report: RetentionReport
) -> tuple[list[tuple[datetime, datetime]], bool]:
    """Drop the partitions of ``table`` that end before ``longest_cutoff`` (the oldest cutoff
    of all environments); return the time ranges they covered, and False if one could not go."""
    with system_transaction(engine) as session:
        partitions = monthly_partitions(session, table)
    dropped: list[tuple[datetime, datetime]] = []
    for name, start in partitions:
        end = _midnight(month_start(start, 1))
        if end > longest_cutoff:
            break
        if not report.dry_run:
            try:
                with system_transaction(engine) as session:
                    # DROP needs an exclusive lock on the parent: better to try again next hour
                    # than to queue every insert behind a long-running report query.
                    session.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
                    session.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
            except DBAPIError as exc:
                log.warning("partition_drop_skipped", partition=name, error=str(exc.orig)[:300])
                return dropped, False
        report.dropped_partitions.append(name)
        dropped.append((_midnight(start), end))
    return dropped, True


def _midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def _expired(
    table: str, environment: str, cutoff: datetime, skip: list[tuple[datetime, datetime]]
) -> Any:
    model = _MODELS[table]
    conditions = [model.timestamp < cutoff]
    # A dry run counts the rows of partitions it would drop there, not again here.
    conditions.extend(
        sa.not_(sa.and_(model.timestamp >= start, model.timestamp < end)) for start, end in skip
    )
    if table == "deployment_logs":
        # Logs carry no environment: theirs is their deployment's.
        conditions.append(
            model.deployment_id.in_(
                sa.select(DeploymentConfig.id).where(DeploymentConfig.environment == environment)
            )
        )
    else:
        conditions.append(model.environment == environment)
    return sa.and_(*conditions)


def _delete_expired(
    engine: Engine,
    table: str,
    environment: str,
    cutoff: datetime,
    dropped: list[tuple[datetime, datetime]],
    dry_run: bool,
    batch_size: int,
) -> int:
    model = _MODELS[table]
    if dry_run:
        condition = _expired(table, environment, cutoff, dropped)
        with system_transaction(engine) as session:
            count = session.scalar(sa.select(sa.func.count()).select_from(model).where(condition))
            return int(count or 0)
    condition = _expired(table, environment, cutoff, [])
    total = 0
    while True:
        with system_transaction(engine) as session:
            batch = sa.select(model.id).where(condition).limit(batch_size).scalar_subquery()
            # The timestamp bound again outside the subquery lets PostgreSQL prune partitions.
            result = session.execute(
                sa.delete(model)
                .where(model.id.in_(batch), model.timestamp < cutoff)
                .execution_options(synchronize_session=False)
            )
            deleted = int(getattr(result, "rowcount", 0) or 0)
        total += deleted
        if deleted < batch_size:
            return total
