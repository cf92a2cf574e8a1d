"""The queries the worker runs: claim the next deployment, renew and reap leases."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.db.engine import is_postgres
from shipboard.deployments.models import DeploymentConfig, DeploymentRun


def busy_environments(session: Session) -> set[str]:
    return set(
        session.scalars(
            sa.select(DeploymentConfig.environment).where(
                DeploymentConfig.status.in_(("building", "deploying"))
            )
        )
    )


def pending_environments(session: Session) -> list[str]:
    return list(
        session.scalars(
            sa.select(DeploymentConfig.environment)
            .join(DeploymentRun, DeploymentRun.deployment_id == DeploymentConfig.id)
            .where(DeploymentConfig.status == "pending", DeploymentRun.managed.is_(True))
            .distinct()
        )
    )


def try_lock_environment(session: Session, environment: str) -> bool:
    """PostgreSQL: one claimer per environment at a time, held until the claim commits."""
    if not is_postgres(session):
        return True  # SQLite write transactions are serialized already.
    return bool(
        session.scalar(
            sa.select(
                sa.func.pg_try_advisory_xact_lock(sa.func.hashtext("shipboard-env:" + environment))
            )
        )
    )


def queue_head(session: Session, environment: str) -> tuple[DeploymentConfig, DeploymentRun] | None:
    """The next managed deployment of an environment: rollbacks first, then oldest first."""
    stmt = (
        sa.select(DeploymentConfig, DeploymentRun)
        .join(DeploymentRun, DeploymentRun.deployment_id == DeploymentConfig.id)
        .where(
            DeploymentConfig.environment == environment,
            DeploymentConfig.status == "pending",
            DeploymentRun.managed.is_(True),
        )
        .order_by(
            DeploymentConfig.rollback_from.is_(None),
            DeploymentConfig.created_at,
            DeploymentConfig.id,
        )
        .limit(1)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    row = session.execute(stmt).first()
    return (row[0], row[1]) if row else None


def renew_lease(
    session: Session, deployment_id: uuid.UUID, owner: str, until: datetime
) -> tuple[bool, str | None]:
    """Extend our lease; returns (still ours, cancel requested by)."""
    result = session.execute(
        sa.update(DeploymentRun)
        .where(DeploymentRun.deployment_id == deployment_id, DeploymentRun.lease_owner == owner)
        .values(lease_expires_at=until)
        .returning(DeploymentRun.cancel_requested_by)
    ).first()
    if result is None:
        return False, None
    return True, result[0]


def expired_leases(session: Session, now: datetime) -> list[tuple[DeploymentConfig, DeploymentRun]]:
    stmt = (
        sa.select(DeploymentConfig, DeploymentRun)
        .join(DeploymentRun, DeploymentRun.deployment_id == DeploymentConfig.id)
        .where(
            DeploymentConfig.status.in_(("building", "deploying")),
            DeploymentRun.managed.is_(True),
            DeploymentRun.lease_expires_at < now,
        )
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return [(r[0], r[1]) for r in session.execute(stmt).all()]


def due_watches(session: Session, now: datetime) -> list[tuple[DeploymentConfig, DeploymentRun]]:
    stmt = (
        sa.select(DeploymentConfig, DeploymentRun)
        .join(DeploymentRun, DeploymentRun.deployment_id == DeploymentConfig.id)
        .where(DeploymentRun.watch_state == "running", DeploymentRun.watch_next_at <= now)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return [(r[0], r[1]) for r in session.execute(stmt).all()]
