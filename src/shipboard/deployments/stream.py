"""Helpers for the live log stream (Server-Sent Events)."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from shipboard.core.pagination import encode_cursor
from shipboard.deployments import repository, service, state
from shipboard.deployments.schemas import DeploymentLogPage, DeploymentLogRead

POLL_S = 0.25
KEEPALIVE_S = 15.0
BATCH = 500


def poll(
    session: Session, *, deployment_id: uuid.UUID, cursor: str | None
) -> tuple[DeploymentLogPage, str | None]:
    """New lines after ``cursor``, and the final status once the deployment has ended.

    The status is read before the lines, so an ``end`` never overtakes a last line written just
    before the deployment finished."""
    deployment = repository.get(session, deployment_id)
    final = deployment.status if deployment and deployment.status in state.TERMINAL else None
    page = service.list_logs(session, deployment_id=deployment_id, cursor=cursor, limit=BATCH)
    return page, final


def cursor_after(line: DeploymentLogRead) -> str:
    return encode_cursor(line.timestamp, line.id)


def sse(event: str, data: str) -> bytes:
    lines = "".join(f"data: {part}\n" for part in data.splitlines() or [""])
    return f"event: {event}\n{lines}\n".encode()
