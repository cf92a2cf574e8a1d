from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, BackgroundTasks, Body, Depends, Query, Request
from fastapi.responses import StreamingResponse
from sqlalchemy.orm import Session
from starlette.background import BackgroundTask

from shipboard.auth.deps import (
    AnyUser,
    Audit,
    DeployerOrAdmin,
    require_role,
    require_role_unlocked,
)
from shipboard.auth.schemas import Principal
from shipboard.core.errors import GateBlocked
from shipboard.core.problems import Problem
from shipboard.core.time import utcnow
from shipboard.db.engine import bind_identity, system_transaction
from shipboard.deployments import promotion, service, stream
from shipboard.deployments.schemas import (
    Accepted,
    DeploymentCreate,
    DeploymentDetail,
    DeploymentFilter,
    DeploymentLogPage,
    DeploymentPage,
    LogBatch,
    LogFilter,
    RollbackRequest,
    StatusUpdate,
)
from shipboard.http.db import DbSession, RequestDbDep, open_request_db

router = APIRouter(
    prefix="/api/v1",
    tags=["deployments"],
    responses={401: {"model": Problem}, 403: {"model": Problem}},
)
Creator = Annotated[Principal, Depends(require_role("deployer", "service", "admin"))]
Reporter = Annotated[Principal, Depends(require_role("deployer", "service", "admin"))]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": Problem}}
CHANGE: dict[int | str, dict[str, Any]] = {404: {"model": Problem}, 409: {"model": Problem}}
ROLLBACK: dict[int | str, dict[str, Any]] = {
    **CHANGE,
    409: {"model": Problem, "description": "not the deployment serving, or nothing to go back to"},
    422: {"model": Problem, "description": "invalid body, or blocked by a freeze"},
}
RollbackBody = Annotated[RollbackRequest | None, Body()]
UnlockedCreator = Annotated[
    Principal, Depends(require_role_unlocked("deployer", "service", "admin"))
]


async def promotion_answers(
    request: Request, data: DeploymentCreate, caller: UnlockedCreator
) -> promotion.Answers:
    """The metrics store's answers to the target environment's promotion checks.

    A dependency, declared before ``DbSession`` in the route, so FastAPI runs it before the
    request's transaction opens: the checks are read in a short read transaction of their own,
    the store is asked with none open (an HTTP call of up to its timeout must not hold SQLite's
    write lock, or a PostgreSQL connection idle in a transaction, while the environment row is
    locked), and the service matches the answers against the checks of the locked row."""
    if data.force:
        return {}  # gates skipped (an admin), or refused (anyone else): nothing to ask
    return await _ask_store(
        request,
        caller,
        partial(service.promotion_asks, environment=data.environment, version=data.version),
    )


async def _ask_store(
    request: Request, caller: Principal, questions_of: Callable[[Session], list[promotion.Ask]]
) -> promotion.Answers:
    """The questions read in a short read transaction of their own, then put to the store
    with no transaction open."""
    async with open_request_db(request, write=False, loop=False) as db:
        await db.run(bind_identity, role=caller.role, user_id=caller.name)
        questions = await db.run(questions_of)
    if not questions:
        return {}
    store = getattr(request.app.state, "metrics_store", None)
    ask = partial(service.ask_promotion_checks, store, questions, at=utcnow())
    return await anyio.to_thread.run_sync(ask)


PromotionAnswers = Annotated[promotion.Answers, Depends(promotion_answers)]
UnlockedApprover = Annotated[Principal, Depends(require_role_unlocked("deployer", "admin"))]


async def approval_answers(
    request: Request, deployment_id: uuid.UUID, caller: UnlockedApprover
) -> promotion.Answers:
    """The metrics store's answers to the promotion checks of a deployment about to be
    approved, asked the way ``promotion_answers`` asks them for a create: before the request's
    transaction opens."""
    return await answers_for_approval(request, caller, deployment_id)


async def answers_for_approval(
    request: Request, caller: Principal, deployment_id: uuid.UUID
) -> promotion.Answers:
    """``approval_answers`` for a caller found otherwise (the web page's form)."""
    return await _ask_store(
        request,
        caller,
        partial(service.approval_asks, deployment_id=deployment_id, approver=caller.name),
    )


ApprovalAnswers = Annotated[promotion.Answers, Depends(approval_answers)]


@router.post(
    "/deployments",
    status_code=201,
    response_model=DeploymentDetail,
    responses={
        404: {"model": Problem},
        422: {"model": Problem, "description": "invalid input, or blocked by gates"},
        429: {"model": Problem, "description": "max_deployment_frequency reached"},
    },
)
def create_deployment(
    data: DeploymentCreate,
    # First: the store is asked before anything uses the request's transaction (DbSession,
    # and the caller's identity bound in it), so while it answers, no transaction is open.
    answers: PromotionAnswers,
    db: DbSession,
    caller: Creator,
    audit: Audit,
    request: Request,
    background: BackgroundTasks,
) -> DeploymentDetail:
    """Create a deployment; it runs through the environment's pipeline, or is reported by you.
    The environment's gates decide first (`config.promotion_checks` ask the metrics store)."""
    try:
        detail = service.create_deployment(
            db, data=data, caller=caller, audit_context=audit, promotion_answers=answers
        )
    except GateBlocked as blocked:
        # The request's transaction rolls back; the notice of the block must survive it.
        def notify(error: GateBlocked = blocked) -> None:
            with system_transaction(request.app.state.engine) as session:
                service.notify_gate_block(session, data=data, caller=caller.name, error=error)

        request.state.after_rollback = [notify]
        raise
    _wake_worker(request, background)
    return detail


def _wake_worker(request: Request, background: BackgroundTasks) -> None:
    # Background tasks run after the response, so after the commit: the worker finds the row.
    wake = getattr(request.app.state, "wake_worker", None)
    if wake is not None:
        background.add_task(wake)


@router.get("/deployments", response_model=DeploymentPage, responses={422: {"model": Problem}})
async def list_deployments(
    db: RequestDbDep,
    _: AnyUser,
    filters: Annotated[DeploymentFilter, Query()],
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> DeploymentPage:
    """Deployments, newest first."""
    return await db.run(service.list_deployments, filters=filters, cursor=cursor, limit=limit)


@router.get("/deployments/{deployment_id}", response_model=DeploymentDetail, responses=NOT_FOUND)
async def get_deployment(
    deployment_id: uuid.UUID, db: RequestDbDep, _: AnyUser
) -> DeploymentDetail:
    """One deployment with its gate results, analysis (with measured values) and approval."""
    return await db.run(service.get_deployment, deployment_id=deployment_id)


@router.post(
    "/deployments/{deployment_id}/status", response_model=DeploymentDetail, responses=CHANGE
)
def report_status(
    deployment_id: uuid.UUID, update: StatusUpdate, db: DbSession, caller: Reporter, audit: Audit
) -> DeploymentDetail:
    """Advance a reported deployment (triggerer or admin); 409 names the allowed next states."""
    return service.report_status(
        db, deployment_id=deployment_id, update=update, caller=caller, audit_context=audit
    )


@router.post(
    "/deployments/{deployment_id}/cancel", response_model=DeploymentDetail, responses=CHANGE
)
def cancel(
    deployment_id: uuid.UUID, db: DbSession, caller: Reporter, audit: Audit
) -> DeploymentDetail:
    """Cancel a pending or running deployment (a running step's processes are killed)."""
    return service.cancel(db, deployment_id=deployment_id, caller=caller, audit_context=audit)


@router.post(
    "/deployments/{deployment_id}/approve",
    response_model=DeploymentDetail,
    responses={
        **CHANGE,
        422: {"model": Problem, "description": "blocked by gates, judged again at approval"},
    },
)
def approve(
    deployment_id: uuid.UUID,
    # First, as on create: the store is asked before the request's transaction opens.
    answers: ApprovalAnswers,
    db: DbSession,
    caller: DeployerOrAdmin,
    audit: Audit,
) -> DeploymentDetail:
    """Approve a deployment waiting for approval (not your own). Its gates are judged again
    now (`config.promotion_checks` ask the metrics store again); one that fails is a 422 and
    the deployment keeps waiting."""
    return service.approve(
        db,
        deployment_id=deployment_id,
        caller=caller,
        audit_context=audit,
        promotion_answers=answers,
    )


@router.post(
    "/deployments/{deployment_id}/reject", response_model=DeploymentDetail, responses=CHANGE
)
def reject(
    deployment_id: uuid.UUID, db: DbSession, caller: DeployerOrAdmin, audit: Audit
) -> DeploymentDetail:
    """Reject a deployment waiting for approval: it fails without running."""
    return service.reject(db, deployment_id=deployment_id, caller=caller, audit_context=audit)


@router.post(
    "/deployments/{deployment_id}/rollback",
    status_code=201,
    response_model=DeploymentDetail,
    responses=ROLLBACK,
)
def rollback(
    deployment_id: uuid.UUID,
    db: DbSession,
    caller: DeployerOrAdmin,
    audit: Audit,
    request: Request,
    background: BackgroundTasks,
    options: RollbackBody = None,
) -> DeploymentDetail:
    """Redeploy the version before this deployment, which must be the one serving."""
    detail = service.rollback(
        db,
        deployment_id=deployment_id,
        caller=caller,
        audit_context=audit,
        force=options.force if options else False,
    )
    _wake_worker(request, background)
    return detail


@router.post(
    "/environments/{name}/rollback",
    status_code=201,
    response_model=DeploymentDetail,
    responses=ROLLBACK,
)
def rollback_environment(
    name: str,
    db: DbSession,
    caller: DeployerOrAdmin,
    audit: Audit,
    request: Request,
    background: BackgroundTasks,
    options: RollbackBody = None,
) -> DeploymentDetail:
    """Roll back the deployment now serving the environment."""
    detail = service.rollback_environment(
        db,
        name=name,
        caller=caller,
        audit_context=audit,
        force=options.force if options else False,
    )
    _wake_worker(request, background)
    return detail


@router.get(
    "/deployments/{deployment_id}/logs", response_model=DeploymentLogPage, responses=NOT_FOUND
)
async def list_logs(
    deployment_id: uuid.UUID,
    db: RequestDbDep,
    _: AnyUser,
    filters: Annotated[LogFilter, Query()],
    cursor: Annotated[str | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 500,
) -> DeploymentLogPage:
    """Log lines, oldest first; filter by level, source and time."""
    return await db.run(
        service.list_logs, deployment_id=deployment_id, filters=filters, cursor=cursor, limit=limit
    )


@router.post(
    "/deployments/{deployment_id}/logs",
    status_code=201,
    response_model=Accepted,
    responses={**NOT_FOUND, 422: {"model": Problem}},
)
async def append_logs(
    deployment_id: uuid.UUID, batch: LogBatch, db: RequestDbDep, caller: Reporter
) -> Accepted:
    """Append log lines to a deployment (its triggerer, or an admin); all or nothing."""
    count = await db.run(
        service.add_logs, deployment_id=deployment_id, logs=batch.logs, caller=caller
    )
    return Accepted(accepted=count)


@router.get(
    "/deployments/{deployment_id}/logs/stream",
    responses={
        200: {"content": {"text/event-stream": {}}},
        **NOT_FOUND,
        429: {"model": Problem, "description": "too many open streams (yours, or the server's)"},
    },
    response_class=StreamingResponse,
)
def stream_logs(
    deployment_id: uuid.UUID, request: Request, db: DbSession, caller: AnyUser
) -> StreamingResponse:
    """Server-Sent Events: stored lines, then new ones as they come, then an `end` event."""
    service.get_deployment(db, deployment_id=deployment_id)  # 404 before the stream starts
    release = request.app.state.stream_budget.acquire(caller.user_id)
    feeds: stream.Feeds = request.app.state.log_feeds

    async def events() -> AsyncIterator[bytes]:
        try:
            async for chunk in feeds.follow(deployment_id, disconnected=request.is_disconnected):
                yield chunk
        finally:
            release()

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        # Also after a response that never started its body (the generator's finally never ran).
        background=BackgroundTask(release),
    )
