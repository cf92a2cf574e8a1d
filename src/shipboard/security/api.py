from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    BackgroundTasks,
    Depends,
    File,
    Form,
    Query,
    Request,
    Response,
    UploadFile,
)

from shipboard.auth.deps import (
    AnyUser,
    Audit,
    audit_context_of,
    require_role,
    require_role_unlocked,
)
from shipboard.auth.schemas import Principal
from shipboard.core.errors import PayloadTooLarge
from shipboard.core.pagination import DEFAULT_LIMIT, MAX_LIMIT
from shipboard.core.problems import Problem
from shipboard.core.types import EnvironmentName, ScanStatus, ScanType, Severity
from shipboard.db.engine import transaction
from shipboard.environments.service import max_upload_bytes
from shipboard.http.db import DbSession, RequestDbDep
from shipboard.security import ingest, runs, service
from shipboard.security.schemas import (
    CurrentFindingPage,
    ScanRun,
    SecurityFindingFilter,
    SecurityFindingPage,
    SecurityScanFilter,
    SecurityScanPage,
    SecurityScanRead,
    Triage,
)

router = APIRouter(
    prefix="/api/v1/security",
    tags=["security"],
    responses={401: {"model": Problem}, 403: {"model": Problem}},
)
Importer = Annotated[Principal, Depends(require_role("deployer", "service", "admin"))]
# The import authenticates outside the request transaction: it parses before it writes.
UnlockedImporter = Annotated[
    Principal, Depends(require_role_unlocked("deployer", "service", "admin"))
]
Triager = Annotated[Principal, Depends(require_role("deployer", "admin"))]
CHANGE: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem},
    413: {"model": Problem},
    422: {"model": Problem},
}
IMPORT: dict[int | str, dict[str, Any]] = {**CHANGE, 409: {"model": Problem}}


@router.post("/scans/import", status_code=201, responses=IMPORT)
def import_scan(
    request: Request,
    caller: UnlockedImporter,
    file: Annotated[UploadFile, File(description="SARIF 2.1.0 or a native JSON report")],
    environment: Annotated[EnvironmentName, Form()],
    type: Annotated[ScanType | None, Form()] = None,
    tool: Annotated[str | None, Form(max_length=128)] = None,
    target: Annotated[
        str | None,
        Form(
            min_length=1,
            max_length=4096,
            description="what was scanned (image, path, artifact); default: what the report "
            "names (trivy's ArtifactName), else none. Findings resolve per target.",
        ),
    ] = None,
) -> dict[str, Any]:
    """Import a scan report: a completed scan, its findings, and their lifecycle across scans.
    409 while another import of the same environment, type, tool and target is in progress."""
    engine = request.app.state.engine
    # No request transaction: a 20 MB report parses for seconds, and a write transaction
    # open meanwhile would hold SQLite's only write lock, stalling every other writer.
    with transaction(engine, write=False) as db:
        limit = max_upload_bytes(db, name=environment)
    data = file.file.read(limit + 1 if limit else -1)
    if limit and len(data) > limit:
        raise PayloadTooLarge(f"the report is larger than {environment}'s max_file_size_mb")
    report = service.parse(data, scan_type=type, tool=tool)
    return service.import_report(
        ingest.caller_opener(engine, role=caller.role, user_id=caller.name),
        environment=environment,
        target=target,
        audit_context=audit_context_of(request, caller),
        report=report,
    )


@router.post("/scans", status_code=202, response_model=SecurityScanRead, responses=CHANGE)
def run_scan(
    data: ScanRun,
    request: Request,
    background: BackgroundTasks,
    db: DbSession,
    caller: Importer,
    audit: Audit,
) -> SecurityScanRead:
    """Queue a scanner run on a target inside SHIPBOARD_SCAN_ROOTS; a worker runs it."""
    settings = request.app.state.settings
    scan = runs.request_scan(
        db,
        data=data,
        roots=settings.scan_roots.split(":"),
        protected=settings.scan_protected,
        requested_by=caller.name,
        audit_context=audit,
    )
    wake = getattr(request.app.state, "wake_worker", None)
    if wake is not None:
        background.add_task(wake)  # after the response, so after the commit
    return scan


@router.get("/scans", response_model=SecurityScanPage, responses={422: {"model": Problem}})
async def list_scans(
    db: RequestDbDep,
    _: AnyUser,
    environment: EnvironmentName | None = None,
    status: ScanStatus | None = None,
    type: ScanType | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> SecurityScanPage:
    """Scans, newest first."""
    filters = SecurityScanFilter(environment=environment, status=status, type=type)
    return await db.run(service.list_scans, filters=filters, cursor=cursor, limit=limit)


@router.get(
    "/scans/{scan_id}", response_model=SecurityScanRead, responses={404: {"model": Problem}}
)
async def get_scan(scan_id: uuid.UUID, db: RequestDbDep, _: AnyUser) -> SecurityScanRead:
    """One scan with its summary."""
    return await db.run(service.get_scan, scan_id=scan_id)


@router.get(
    "/scans/{scan_id}/findings",
    response_model=SecurityFindingPage,
    responses={404: {"model": Problem}},
)
async def scan_findings(
    scan_id: uuid.UUID,
    db: RequestDbDep,
    _: AnyUser,
    severity: Severity | None = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> SecurityFindingPage:
    """The findings of one scan."""
    await db.run(service.get_scan, scan_id=scan_id)
    return await db.run(
        service.list_findings,
        filters=SecurityFindingFilter(scan_id=scan_id, severity=severity),
        cursor=cursor,
        limit=limit,
    )


@router.get("/findings", response_model=CurrentFindingPage, responses={422: {"model": Problem}})
async def current_findings(
    db: RequestDbDep,
    _: AnyUser,
    environment: EnvironmentName | None = None,
    severity: Severity | None = None,
    status: Literal["open", "resolved", "triaged"] | None = None,
    overdue: bool | None = None,
    type: ScanType | None = None,
    tool: str | None = None,
    target: Annotated[str | None, Query(max_length=4096)] = None,
    cwe: Annotated[str | None, Query(pattern=r"^CWE-[0-9]+$")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> CurrentFindingPage:
    """Every finding as it stands now (its latest occurrence), with its lifecycle state and SLA,
    newest first, a page at a time."""
    page = await db.run(
        service.findings_page,
        environment=environment,
        severity=severity,
        status=status,
        overdue=overdue,
        scan_type=type,
        tool=tool,
        target=target,
        cwe=cwe,
        cursor=cursor,
        limit=limit,
    )
    return CurrentFindingPage.model_validate({"items": page.items, "next_cursor": page.next_cursor})


@router.patch("/findings/{finding_id}", status_code=204, response_class=Response, responses=CHANGE)
def triage_finding(
    finding_id: uuid.UUID, body: Triage, db: DbSession, caller: Triager, audit: Audit
) -> Response:
    """Triage a finding (fixed, false_positive, accepted_risk); later scans carry it forward."""
    service.triage(
        db,
        finding_id=finding_id,
        status=body.status,
        reason=body.reason,
        expires_at=body.expires_at,
        actor=caller.name,
        audit_context=audit,
    )
    return Response(status_code=204)
