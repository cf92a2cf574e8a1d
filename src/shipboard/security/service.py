"""Security scans and findings: record, read, list."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from shipboard.core.errors import InvalidInput, NotFound
from shipboard.core.pagination import clamp_limit
from shipboard.core.time import utcnow
from shipboard.environments.service import require_environment
from shipboard.security import repository
from shipboard.security.models import SecurityFinding, SecurityScan
from shipboard.security.schemas import (
    SecurityFindingCreate,
    SecurityFindingFilter,
    SecurityFindingPage,
    SecurityFindingRead,
    SecurityScanCreate,
    SecurityScanFilter,
    SecurityScanPage,
    SecurityScanRead,
)


def create_scan(session: Session, *, data: SecurityScanCreate) -> SecurityScanRead:
    """Record a scan in the given state."""
    require_environment(session, data.environment)
    scan = SecurityScan(
        id=uuid.uuid4(),
        type=data.type,
        environment=data.environment,
        status=data.status,
        started_at=data.started_at or utcnow(),
        completed_at=data.completed_at,
        summary=data.summary.model_dump() if data.summary else None,
        error_message=data.error_message,
    )
    repository.add(session, scan)
    return SecurityScanRead.model_validate(scan)


def get_scan(session: Session, *, scan_id: uuid.UUID) -> SecurityScanRead:
    """One scan, or NotFound."""
    scan = repository.get_scan(session, scan_id)
    if scan is None:
        raise NotFound(f"scan {scan_id} does not exist")
    return SecurityScanRead.model_validate(scan)


def list_scans(
    session: Session,
    *,
    filters: SecurityScanFilter,
    cursor: str | None = None,
    limit: int | None = None,
) -> SecurityScanPage:
    """Scans, newest first."""
    page = repository.scan_page(session, filters=filters, cursor=cursor, limit=clamp_limit(limit))
    return SecurityScanPage(
        items=[SecurityScanRead.model_validate(s) for s in page.items], next_cursor=page.next_cursor
    )


def create_finding(session: Session, *, data: SecurityFindingCreate) -> SecurityFindingRead:
    """Record one finding of an existing scan."""
    if repository.get_scan(session, data.scan_id) is None:
        raise InvalidInput(
            f"scan {data.scan_id} does not exist",
            errors=[{"loc": ["body", "scan_id"], "msg": "no such scan"}],
        )
    resolved_at = data.resolved_at or (utcnow() if data.resolved else None)
    finding = SecurityFinding(
        id=uuid.uuid4(),
        scan_id=data.scan_id,
        severity=data.severity,
        title=data.title,
        description=data.description,
        location=data.location,
        cwe_id=data.cwe_id,
        remediation=data.remediation,
        resolved=data.resolved,
        resolved_at=resolved_at,
        created_at=utcnow(),
    )
    repository.add(session, finding)
    return SecurityFindingRead.model_validate(finding)


def get_finding(session: Session, *, finding_id: uuid.UUID) -> SecurityFindingRead:
    """One finding, or NotFound."""
    finding = repository.get_finding(session, finding_id)
    if finding is None:
        raise NotFound(f"finding {finding_id} does not exist")
    return SecurityFindingRead.model_validate(finding)


def list_findings(
    session: Session,
    *,
    filters: SecurityFindingFilter,
    cursor: str | None = None,
    limit: int | None = None,
) -> SecurityFindingPage:
    """Findings, newest first."""
    page = repository.finding_page(
        session, filters=filters, cursor=cursor, limit=clamp_limit(limit)
    )
    return SecurityFindingPage(
        items=[SecurityFindingRead.model_validate(f) for f in page.items],
        next_cursor=page.next_cursor,
    )
