from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, File, Form, Query, Request, UploadFile

from shipboard.auth.deps import AnyUser, Audit, require_role
from shipboard.auth.schemas import Principal
from shipboard.core.errors import PayloadTooLarge
from shipboard.core.problems import Problem
from shipboard.core.telemetry import note_ingest
from shipboard.core.types import EnvironmentName, ShortText, Timestamp
from shipboard.environments.deps import spend_budget
from shipboard.environments.service import max_upload_bytes
from shipboard.http.db import DbSession, RequestDbDep
from shipboard.performance import service
from shipboard.performance.schemas import (
    IngestResult,
    PerformanceBatch,
    PerformanceMetricFilter,
    PerformanceMetricPage,
    RegressionList,
)

router = APIRouter(
    prefix="/api/v1/performance",
    tags=["performance"],
    responses={401: {"model": Problem}, 403: {"model": Problem}},
)
# DESIGN.md §4: deployers import benchmark results, CI pipelines (service) push them.
Submitter = Annotated[Principal, Depends(require_role("deployer", "service", "admin"))]
CHANGE: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem},
    413: {"model": Problem},
    422: {"model": Problem},
    429: {"model": Problem},
}
DEFAULT_UPLOAD_LIMIT = 50 * 1024 * 1024


@router.post("/metrics", status_code=201, response_model=IngestResult, responses=CHANGE)
def submit(batch: PerformanceBatch, request: Request, db: DbSession, caller: Submitter) -> Any:
    """Store up to 10,000 results, all or nothing, and judge each series they touch."""
    note_ingest(request.state, "performance", points=len(batch.metrics))
    for environment in sorted({m.environment for m in batch.metrics}):
        spend_budget(request, db, caller, environment)
    return service.record_results(db, metrics=batch.metrics)


@router.post("/import", status_code=201, response_model=IngestResult, responses=CHANGE)
def import_results(
    request: Request,
    db: DbSession,
    caller: Submitter,
    audit: Audit,
    file: Annotated[
        UploadFile, File(description="pytest-benchmark JSON, a k6 summary export, or CSV")
    ],
    environment: Annotated[EnvironmentName, Form()],
    version: Annotated[ShortText | None, Form()] = None,
    commit_sha: Annotated[ShortText | None, Form()] = None,
) -> Any:
    """Import a results file; the format is detected from its content."""
    spend_budget(request, db, caller, environment)
    limit = max_upload_bytes(db, name=environment) or DEFAULT_UPLOAD_LIMIT
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLarge(f"the file is larger than {limit // (1024 * 1024)} MB")
    result = service.import_file(
        db,
        environment=environment,
        data=data,
        version=version,
        commit_sha=commit_sha,
        audit_context=audit,
    )
    note_ingest(request.state, "performance", points=result.accepted)
    return result


@router.get("/metrics", response_model=PerformanceMetricPage, responses={422: {"model": Problem}})
async def list_results(
    db: RequestDbDep,
    _: AnyUser,
    name: Annotated[str | None, Query(max_length=255)] = None,
    environment: EnvironmentName | None = None,
    since: Timestamp | None = None,
    until: Timestamp | None = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
    limit: Annotated[int | None, Query(ge=1, le=1000)] = None,
) -> PerformanceMetricPage:
    """Results, newest first."""
    filters = PerformanceMetricFilter(name=name, environment=environment, since=since, until=until)
    return await db.run(service.list_results, filters=filters, cursor=cursor, limit=limit)


@router.get("/regressions", response_model=RegressionList, responses={422: {"model": Problem}})
async def regressions(
    db: RequestDbDep,
    _: AnyUser,
    environment: EnvironmentName | None = None,
    version: Annotated[str | None, Query(max_length=255)] = None,
    name: Annotated[str | None, Query(max_length=255)] = None,
    status: Literal["open", "resolved", "all"] = "open",
) -> RegressionList:
    """Regressions with value, baseline, delta %, p-value and the model that found them."""
    return await db.run(
        service.list_regressions,
        environment=environment,
        version=version,
        name=name,
        status=None if status == "all" else status,
    )
