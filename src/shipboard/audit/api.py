from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from shipboard.audit import service
from shipboard.audit.schemas import AuditEventPage, AuditFilter
from shipboard.auth.deps import AdminOnly
from shipboard.core.problems import Problem
from shipboard.http.db import RequestDbDep

router = APIRouter(
    prefix="/api/v1/audit",
    tags=["audit"],
    responses={401: {"model": Problem}, 403: {"model": Problem}, 422: {"model": Problem}},
)


@router.get("", response_model=AuditEventPage)
async def list_audit_events(
    db: RequestDbDep,
    _: AdminOnly,
    filters: Annotated[AuditFilter, Query()],
    cursor: Annotated[
        str | None, Query(description="From next_cursor of the previous page")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> AuditEventPage:
    """The audit trail, newest first (admins only)."""
    return await db.run(service.list_events, filters=filters, cursor=cursor, limit=limit)
