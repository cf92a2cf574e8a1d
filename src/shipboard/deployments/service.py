"""Deployment records and their logs."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from shipboard.core.errors import NotFound
from shipboard.core.pagination import clamp_limit
from shipboard.core.time import utcnow
from shipboard.deployments import repository
from shipboard.deployments.models import DeploymentConfig, DeploymentLog
from shipboard.deployments.schemas import (
    DeploymentCreate,
    DeploymentFilter,
    DeploymentLogCreate,
    DeploymentLogPage,
    DeploymentLogRead,
    DeploymentPage,
    DeploymentRead,
)
from shipboard.environments.service import require_environment


def create_deployment(
    session: Session, *, data: DeploymentCreate, triggered_by: str
) -> DeploymentRead:
    """Record a new deployment in ``pending``; the caller is its triggerer."""
    require_environment(session, data.environment)
    deployment = repository.add(
        session,
        DeploymentConfig(
            id=uuid.uuid4(),
            environment=data.environment,
            version=data.version,
            commit_sha=data.commit_sha,
            status="pending",
            created_at=utcnow(),
            triggered_by=triggered_by,
            logs_url=data.logs_url,
            artifacts_url=data.artifacts_url,
        ),
    )
    return DeploymentRead.model_validate(deployment)


def get_deployment(session: Session, *, deployment_id: uuid.UUID) -> DeploymentRead:
    """One deployment, or NotFound."""
    return DeploymentRead.model_validate(_require(session, deployment_id))


def list_deployments(
    session: Session,
    *,
    filters: DeploymentFilter,
    cursor: str | None = None,
    limit: int | None = None,
) -> DeploymentPage:
    """Newest first, filtered on the spec's indexed columns."""
    page = repository.page(session, filters=filters, cursor=cursor, limit=clamp_limit(limit))
    return DeploymentPage(
        items=[DeploymentRead.model_validate(d) for d in page.items], next_cursor=page.next_cursor
    )


def add_logs(session: Session, *, deployment_id: uuid.UUID, logs: list[DeploymentLogCreate]) -> int:
    """Append a batch of log lines to a deployment; all or nothing."""
    _require(session, deployment_id)
    now = utcnow()
    rows = [
        {
            "id": uuid.uuid4(),
            "deployment_id": deployment_id,
            "level": log.level,
            "message": log.message,
            "timestamp": log.timestamp or now,
            "source": log.source,
            "metadata_": log.metadata,
        }
        for log in logs
    ]
    return repository.add_logs(session, rows)


def list_logs(
    session: Session,
    *,
    deployment_id: uuid.UUID,
    cursor: str | None = None,
    limit: int | None = None,
) -> DeploymentLogPage:
    """A deployment's log lines, oldest first."""
    _require(session, deployment_id)
    page = repository.log_page(
        session, deployment_id=deployment_id, cursor=cursor, limit=clamp_limit(limit)
    )
    return DeploymentLogPage(items=[_log_read(r) for r in page.items], next_cursor=page.next_cursor)


def _log_read(row: DeploymentLog) -> DeploymentLogRead:
    return DeploymentLogRead(
        id=row.id,
        deployment_id=row.deployment_id,
        level=row.level,
        message=row.message,
        timestamp=row.timestamp,
        source=row.source,
        metadata=row.metadata_,
    )


def _require(session: Session, deployment_id: uuid.UUID) -> DeploymentConfig:
    deployment = repository.get(session, deployment_id)
    if deployment is None:
        raise NotFound(f"deployment {deployment_id} does not exist")
    return deployment
