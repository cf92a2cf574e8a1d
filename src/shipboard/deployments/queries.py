"""Reading deployments: one with its run, a page of them, the lookups the other modules share."""

from __future__ import annotations

import uuid

from pydantic import TypeAdapter
from sqlalchemy.orm import Session

from shipboard.core.errors import Conflict, NotFound
from shipboard.core.pagination import clamp_limit
from shipboard.deployments import repository
from shipboard.deployments.models import DeploymentConfig, DeploymentRun
from shipboard.deployments.schemas import (
    Approval,
    DeploymentDetail,
    DeploymentFilter,
    DeploymentPage,
    DeploymentRead,
    GateResultRead,
)

# One validator for a whole page of rows: far cheaper than a model_validate per ORM object.
_READ_LIST = TypeAdapter(list[DeploymentRead])


def get_deployment(session: Session, *, deployment_id: uuid.UUID) -> DeploymentDetail:
    """One deployment with its gates, analysis and approval."""
    deployment = require(session, deployment_id)
    return detail(deployment, repository.get_run(session, deployment_id))


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
        items=_READ_LIST.validate_python([row._asdict() for row in page.items]),
        next_cursor=page.next_cursor,
    )


def detail(deployment: DeploymentConfig, run: DeploymentRun | None) -> DeploymentDetail:
    base = DeploymentRead.model_validate(deployment).model_dump()
    if run is None:
        # Rows written before runs existed, or by another tool: a reported deployment.
        return DeploymentDetail(**base, managed=False, approval=Approval(required=False))
    return DeploymentDetail(
        **base,
        managed=run.managed,
        commit_timestamp=run.commit_timestamp,
        forced=run.forced,
        gates=[GateResultRead.model_validate(g) for g in run.gate_results or []],
        gate_violations=[g["gate"] for g in run.gate_results or [] if not g.get("passed", True)],
        analysis=list(run.analysis or []),
        approval=Approval(
            required=run.needs_approval, approved_by=run.approved_by, approved_at=run.approved_at
        ),
        verify_time=run.verify_time,
        cancel_requested_by=run.cancel_requested_by,
        watch_state=run.watch_state,
    )


def require(
    session: Session, deployment_id: uuid.UUID, *, for_update: bool = False
) -> DeploymentConfig:
    deployment = (
        repository.get_for_update(session, deployment_id)
        if for_update
        else repository.get(session, deployment_id)
    )
    if deployment is None:
        raise NotFound(f"deployment {deployment_id} does not exist")
    return deployment


def require_run(session: Session, deployment_id: uuid.UUID) -> DeploymentRun:
    run = repository.get_run(session, deployment_id)
    if run is None:
        raise Conflict("this deployment was not created through Shipboard's API")
    return run
