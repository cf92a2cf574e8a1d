from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.core.pagination import Page
from shipboard.db.keyset import keyset_page
from shipboard.deployments.models import DeploymentConfig, DeploymentLog
from shipboard.deployments.schemas import DeploymentFilter


def add(session: Session, deployment: DeploymentConfig) -> DeploymentConfig:
    session.add(deployment)
    session.flush()
    return deployment


def get(session: Session, deployment_id: uuid.UUID) -> DeploymentConfig | None:
    return session.get(DeploymentConfig, deployment_id)


def page(
    session: Session, *, filters: DeploymentFilter, cursor: str | None, limit: int
) -> Page[DeploymentConfig]:
    stmt = sa.select(DeploymentConfig)
    for column in ("environment", "status", "triggered_by", "commit_sha"):
        value = getattr(filters, column)
        if value is not None:
            stmt = stmt.where(getattr(DeploymentConfig, column) == value)
    if filters.since is not None:
        stmt = stmt.where(DeploymentConfig.created_at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(DeploymentConfig.created_at < filters.until)
    return keyset_page(
        session,
        stmt,
        sort_col=DeploymentConfig.created_at,
        id_col=DeploymentConfig.id,
        cursor=cursor,
        limit=limit,
    )


def add_logs(session: Session, rows: list[dict[str, Any]]) -> int:
    if rows:
        session.execute(sa.insert(DeploymentLog), rows)
    return len(rows)


def log_page(
    session: Session, *, deployment_id: uuid.UUID, cursor: str | None, limit: int
) -> Page[DeploymentLog]:
    stmt = sa.select(DeploymentLog).where(DeploymentLog.deployment_id == deployment_id)
    return keyset_page(
        session,
        stmt,
        sort_col=DeploymentLog.timestamp,
        id_col=DeploymentLog.id,
        cursor=cursor,
        limit=limit,
        descending=False,
    )
