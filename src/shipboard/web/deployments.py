"""Deployments: the list with filters, and one deployment with its stages, gates, analysis, live
log tail and the buttons its viewer may use."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse, Response

from shipboard.audit.service import AuditContext
from shipboard.auth.schemas import Principal
from shipboard.core.types import DeploymentStatus, EnvironmentName
from shipboard.deployments import promotion
from shipboard.deployments import service as deployments
from shipboard.deployments.api import answers_for_approval
from shipboard.deployments.schemas import DeploymentFilter
from shipboard.http.db import DbSession, RequestDbDep
from shipboard.web import service
from shipboard.web.deps import DeployerForm, FormUser, UnlockedDeployerForm, Viewer
from shipboard.web.helpers import moment
from shipboard.web.render import render

router = APIRouter(include_in_schema=False)
PAGE_SIZE = 50


def _audit(request: Request, principal: Principal) -> AuditContext:
    return AuditContext(
        actor=principal.name,
        actor_role=principal.role,
        source_ip=request.client.host if request.client else None,
        request_id=getattr(request.state, "request_id", None),
    )


@router.get("/deployments")
async def deployment_list(
    request: Request,
    db: RequestDbDep,
    principal: Viewer,
    environment: EnvironmentName | None = None,
    status: DeploymentStatus | None = None,
    who: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    since_at = moment(since, "since")
    filters = DeploymentFilter(
        environment=environment, status=status, triggered_by=who or None, since=since_at
    )
    page = await db.run(
        deployments.list_deployments, filters=filters, cursor=cursor, limit=PAGE_SIZE
    )
    query = {
        k: v
        for k, v in {
            "environment": environment,
            "status": status,
            "who": who,
            "since": since,
        }.items()
        if v
    }
    return render(
        request,
        "deployments.html",
        principal=principal,
        items=page.items,
        next_cursor=page.next_cursor,
        query=query,
        statuses=("pending", "building", "deploying", "success", "failed", "rolled_back"),
        environments=("development", "staging", "production"),
    )


@router.get("/deployments/{deployment_id}")
async def deployment_page(
    request: Request, db: RequestDbDep, principal: Viewer, deployment_id: uuid.UUID
) -> Response:
    view = await db.run(service.deployment_view, deployment_id=deployment_id, principal=principal)
    return render(
        request,
        "deployment.html",
        principal=principal,
        done=request.query_params.get("done"),
        **view,
    )


@router.post("/deployments/{deployment_id}/rollback")
def rollback(
    request: Request, db: DbSession, principal: DeployerForm, deployment_id: uuid.UUID
) -> Response:
    created = deployments.rollback(
        db,
        deployment_id=deployment_id,
        caller=principal,
        audit_context=_audit(request, principal),
    )
    return RedirectResponse(f"/deployments/{created.id}?done=rollback+started", status_code=303)


@router.post("/deployments/{deployment_id}/cancel")
def cancel(
    request: Request, db: DbSession, principal: FormUser, deployment_id: uuid.UUID
) -> Response:
    # The service decides (triggerer or admin), exactly as for the API.
    deployments.cancel(
        db, deployment_id=deployment_id, caller=principal, audit_context=_audit(request, principal)
    )
    return RedirectResponse(f"/deployments/{deployment_id}?done=cancel+requested", status_code=303)


async def approval_answers(
    request: Request, deployment_id: uuid.UUID, principal: UnlockedDeployerForm
) -> promotion.Answers:
    """The promotion checks asked again before the form's transaction opens (as the API's)."""
    return await answers_for_approval(request, principal, deployment_id)


@router.post("/deployments/{deployment_id}/approve")
def approve(
    request: Request,
    answers: Annotated[promotion.Answers, Depends(approval_answers)],
    db: DbSession,
    principal: DeployerForm,
    deployment_id: uuid.UUID,
) -> Response:
    deployments.approve(
        db,
        deployment_id=deployment_id,
        caller=principal,
        audit_context=_audit(request, principal),
        promotion_answers=answers,
    )
    return RedirectResponse(f"/deployments/{deployment_id}?done=approved", status_code=303)
