from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.core.pagination import Page
from shipboard.db import bulk
from shipboard.db.engine import is_postgres
from shipboard.db.keyset import filter_by, keyset_page
from shipboard.deployments.models import DeploymentConfig, DeploymentLog, DeploymentRun
from shipboard.deployments.schemas import DeploymentFilter, LogFilter
from shipboard.environments.models import Environment


def add(session: Session, deployment: DeploymentConfig) -> DeploymentConfig:
    session.add(deployment)
    session.flush()
    return deployment


def add_run(session: Session, run: DeploymentRun) -> None:
    session.add(run)
    session.flush()


def get(session: Session, deployment_id: uuid.UUID) -> DeploymentConfig | None:
    return session.get(DeploymentConfig, deployment_id)


def get_run(session: Session, deployment_id: uuid.UUID) -> DeploymentRun | None:
    return session.get(DeploymentRun, deployment_id)


def _advisory_lock(session: Session, key: str) -> None:
    # Advisory, not row, locks: under row-level security a caller may not be allowed to
    # SELECT ... FOR UPDATE a row it may still act on through the service. SQLite's write
    # transactions are serialized already.
    if is_postgres(session):
        session.execute(sa.select(sa.func.pg_advisory_xact_lock(sa.func.hashtext(key))))


def get_for_update(session: Session, deployment_id: uuid.UUID) -> DeploymentConfig | None:
    """The deployment, with its changes serialized until this transaction ends."""
    _advisory_lock(session, f"shipboard-deployment:{deployment_id}")
    deployment = session.get(DeploymentConfig, deployment_id)
    if deployment is not None:
        session.refresh(deployment)
    return deployment


def get_environment(session: Session, name: str) -> Environment | None:
    return session.get(Environment, name)


def lock_environment(session: Session, name: str) -> Environment | None:
    """The environment, with deployment creation in it serialized until this transaction ends."""
    _advisory_lock(session, f"shipboard-environment:{name}")
    return session.get(Environment, name)


def page(
    session: Session, *, filters: DeploymentFilter, cursor: str | None, limit: int
) -> Page[sa.Row[Any]]:
    """Rows, not entities: the list is read-only (see ``keyset_page``)."""
    stmt = filter_by(
        sa.select(*DeploymentConfig.__table__.columns),
        DeploymentConfig,
        filters,
        equal=("environment", "status", "triggered_by", "commit_sha"),
        time_column="created_at",
    )
    return keyset_page(
        session,
        stmt,
        sort_col=DeploymentConfig.created_at,
        id_col=DeploymentConfig.id,
        cursor=cursor,
        limit=limit,
        rows=True,
    )


def created_since(session: Session, environment: str, since: datetime) -> list[datetime]:
    rows = session.scalars(
        sa.select(DeploymentConfig.created_at)
        .where(DeploymentConfig.environment == environment, DeploymentConfig.created_at >= since)
        .order_by(DeploymentConfig.created_at)
    )
    return [r for r in rows if r is not None]


def succeeded_in(session: Session, environment: str, version: str, commit_sha: str) -> bool:
    return (
        session.scalar(
            sa.select(sa.func.count())
            .select_from(DeploymentConfig)
            .where(
                DeploymentConfig.environment == environment,
                DeploymentConfig.version == version,
                DeploymentConfig.commit_sha == commit_sha,
                DeploymentConfig.status == "success",
            )
        )
        or 0
    ) > 0


def last_success_before(
    session: Session, environment: str, created_at: datetime, other_than: DeploymentConfig
) -> DeploymentConfig | None:
    """The newest success before ``created_at`` of a different version than ``other_than``."""
    return session.scalar(
        sa.select(DeploymentConfig)
        .where(
            DeploymentConfig.environment == environment,
            DeploymentConfig.status == "success",
            DeploymentConfig.created_at < created_at,
            DeploymentConfig.id != other_than.id,
            sa.or_(
                DeploymentConfig.version != other_than.version,
                DeploymentConfig.commit_sha != other_than.commit_sha,
            ),
        )
        .order_by(DeploymentConfig.created_at.desc(), DeploymentConfig.id.desc())
        .limit(1)
    )


def current_for_environment(session: Session, environment: str) -> DeploymentConfig | None:
    """The deployment now serving: the newest finished one whose deploy stage ran.

    A deployment that failed during its deploy stage left the environment in its state, so it
    serves (and is what a rollback undoes); one that failed before it never touched anything.
    """
    return session.scalar(
        sa.select(DeploymentConfig)
        .outerjoin(DeploymentRun, DeploymentRun.deployment_id == DeploymentConfig.id)
        .where(
            DeploymentConfig.environment == environment,
            sa.or_(
                DeploymentConfig.status == "success",
                sa.and_(
                    DeploymentConfig.status == "failed",
                    sa.or_(
                        DeploymentRun.deployment_id.is_(None),
                        DeploymentRun.deploy_started_at.is_not(None),
                    ),
                ),
            ),
        )
        .order_by(
            DeploymentConfig.completed_at.desc().nulls_last(),
            DeploymentConfig.created_at.desc(),
            DeploymentConfig.id.desc(),
        )
        .limit(1)
    )


LOG_COLUMNS = (
    bulk.Column("id", "uuid"),
    bulk.Column("deployment_id", "uuid"),
    bulk.Column("level", "text"),
    bulk.Column("message", "text"),
    bulk.Column("timestamp", "timestamp"),
    bulk.Column("source", "text"),
    bulk.Column("metadata", "json"),
)


LOGS_WRITTEN = "shipboard.deployment_logs_written"


def add_logs(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert log lines in one statement; rows without an ``id`` get a new random one."""
    # Noted on the session so live streams in this process can be woken once it commits
    # (deployments.stream); never before, or a stream would look and find nothing.
    session.info.setdefault(LOGS_WRITTEN, set()).update(r["deployment_id"] for r in rows)
    return bulk.insert(
        session,
        "deployment_logs",
        LOG_COLUMNS,
        [
            (
                r.get("id") or new_id,
                r["deployment_id"],
                r["level"],
                r["message"],
                r["timestamp"],
                r["source"],
                r["metadata_"],
            )
            for r, new_id in zip(rows, bulk.uuid7_strings(len(rows)), strict=True)
        ],
    )


def last_log_time(session: Session, deployment_id: uuid.UUID) -> datetime | None:
    return session.scalar(
        sa.select(sa.func.max(DeploymentLog.timestamp)).where(
            DeploymentLog.deployment_id == deployment_id
        )
    )


def log_page(
    session: Session,
    *,
    deployment_id: uuid.UUID,
    filters: LogFilter | None = None,
    cursor: str | None,
    limit: int,
) -> Page[DeploymentLog]:
    stmt = sa.select(DeploymentLog).where(DeploymentLog.deployment_id == deployment_id)
    if filters is not None:
        if filters.level is not None:
            stmt = stmt.where(DeploymentLog.level == filters.level)
        if filters.source is not None:
            stmt = stmt.where(DeploymentLog.source == filters.source)
        if filters.since is not None:
            stmt = stmt.where(DeploymentLog.timestamp >= filters.since)
    return keyset_page(
        session,
        stmt,
        sort_col=DeploymentLog.timestamp,
        id_col=DeploymentLog.id,
        cursor=cursor,
        limit=limit,
        descending=False,
    )
