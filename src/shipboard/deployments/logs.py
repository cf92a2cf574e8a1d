"""A deployment's log: lines appended by clients and by Shipboard itself, read oldest first."""

from __future__ import annotations

import uuid
from datetime import timedelta

from sqlalchemy.orm import Session

from shipboard.auth.schemas import Principal
from shipboard.core.errors import Forbidden
from shipboard.core.pagination import clamp_limit
from shipboard.core.time import utcnow
from shipboard.deployments import repository
from shipboard.deployments.models import DeploymentLog
from shipboard.deployments.queries import require
from shipboard.deployments.schemas import (
    DeploymentLogCreate,
    DeploymentLogPage,
    DeploymentLogRead,
    LogFilter,
)

MICROSECOND = timedelta(microseconds=1)


def add_logs(
    session: Session,
    *,
    deployment_id: uuid.UUID,
    logs: list[DeploymentLogCreate],
    caller: Principal | None = None,
) -> int:
    """Append a batch of log lines; all or nothing. Lines without a time get now, in order."""
    deployment = require(session, deployment_id)
    if caller is not None and caller.role != "admin" and caller.name != deployment.triggered_by:
        raise Forbidden("only the deployment's triggerer, a service that created it, or an admin")
    now = utcnow()
    rows = [
        {
            "deployment_id": deployment_id,
            "level": log.level,
            "message": log.message,
            "timestamp": log.timestamp or now + i * MICROSECOND,
            "source": log.source,
            "metadata_": log.metadata,
        }
        for i, log in enumerate(logs)
    ]
    return repository.add_logs(session, rows)


def list_logs(
    session: Session,
    *,
    deployment_id: uuid.UUID,
    filters: LogFilter | None = None,
    cursor: str | None = None,
    limit: int | None = None,
) -> DeploymentLogPage:
    """A deployment's log lines, oldest first."""
    require(session, deployment_id)
    page = repository.log_page(
        session,
        deployment_id=deployment_id,
        filters=filters,
        cursor=cursor,
        limit=clamp_limit(limit),
    )
    return DeploymentLogPage(items=[log_read(r) for r in page.items], next_cursor=page.next_cursor)


def log_read(row: DeploymentLog) -> DeploymentLogRead:
    assert row.timestamp is not None
    return DeploymentLogRead(
        id=row.id,
        deployment_id=row.deployment_id,
        level=row.level,
        message=row.message,
        timestamp=row.timestamp,
        source=row.source,
        metadata=row.metadata_,
    )


def log_line(session: Session, deployment_id: uuid.UUID, level: str, message: str) -> None:
    """One line from Shipboard itself (``source: shipboard``) in a deployment's log."""
    repository.add_logs(
        session,
        [
            {
                "id": uuid.uuid4(),
                "deployment_id": deployment_id,
                "level": level,
                "message": message,
                "timestamp": utcnow(),
                "source": "shipboard",
                "metadata_": None,
            }
        ],
    )
