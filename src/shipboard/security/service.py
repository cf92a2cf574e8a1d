"""Security scans and findings: record, read and list them; import a report (orchestrating
``ingest``'s chunks), the findings as they stand now (``lifecycle``'s rules) and triage."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.core.errors import InvalidInput, NotFound
from shipboard.core.pagination import Page, clamp_limit, encode_cursor
from shipboard.core.time import utcnow
from shipboard.environments.service import require_environment
from shipboard.environments.validation import stored_mapping
from shipboard.security import ingest, lifecycle, repository
from shipboard.security.importers import ImportFailed, ParsedReport, parse_report
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

log = structlog.get_logger("shipboard.scans")
# Kept for callers that read the defaults here.
WEIGHTS = lifecycle.WEIGHTS
DEFAULT_SLA_DAYS = lifecycle.DEFAULT_SLA_DAYS
sla_days = lifecycle.sla_days


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


# --- importing a report ---------------------------------------------------------------------


def parse(data: bytes, *, scan_type: str | None, tool: str | None) -> ParsedReport:
    """The report in ``data``, or InvalidInput saying what was expected. Pure: callers parse
    before any write transaction begins (a 20 MB report parses for seconds, and on SQLite a
    write transaction holds the database's only write lock)."""
    try:
        return parse_report(data, scan_type=scan_type, tool=tool)
    except ImportFailed as exc:
        raise InvalidInput(str(exc), errors=[{"loc": ["body", "file"], "msg": str(exc)}]) from exc


def import_report(
    open_txn: ingest.Opener,
    *,
    environment: str,
    report: ParsedReport,
    audit_context: AuditContext | None,
    target: str | None = None,
    scan_id: uuid.UUID | None = None,
    now: datetime | None = None,
    chunk_rows: int = ingest.CHUNK_ROWS,
) -> dict[str, Any]:
    """Store a parsed report as a scan with its findings, resolve what is gone, reopen what came
    back — in bounded chunks, each its own transaction (``ingest``), made current at once by the
    last. ``open_txn(write)`` opens the caller's transactions (bound to the caller's identity).
    ``scan_id``: a requested scan that ran (completed here), instead of a new one. ``target``:
    what was scanned (else what the report names, else ""); the lifecycle runs per environment,
    scan type, tool and target. A second import of the same scope meanwhile is a Conflict."""
    now = now or utcnow()
    scope = target or report.target or ""
    # A report that says its scanner failed, with nothing found, is not a clean scan: stored
    # as failed, it resolves nothing.
    failure = report.outcome.failure if not report.findings else None
    key = ingest.scope_key(environment, report.scan_type, report.tool, scope)
    with open_txn(True) as session:
        require_environment(session, environment)
        scan = _scan_for(
            session, scan_id=scan_id, scan_type=report.scan_type, environment=environment, now=now
        )
        if failure is not None:
            result = _complete(session, scan, report, scope, (0, 0, 0), failure, now)
            _audit(session, scan.id, "failed", report, scope, audit_context)
            return result
        ingest.claim(session, key=key, scan=scan)
    try:
        started = time.perf_counter()
        plan = ingest.plan_for(
            open_txn, report, environment=environment, target=scope, scan_id=scan.id, now=now
        )
        planned = time.perf_counter()
        ingest.stage(open_txn, key=key, scan_id=scan.id, plan=plan, chunk_rows=chunk_rows)
        staged = time.perf_counter()
        with open_txn(True) as session:
            ingest.flip(session, key=key, scan_id=scan.id, plan=plan, now=now)
            _audit(session, scan.id, "completed", report, scope, audit_context)
        flipped = time.perf_counter()
    except BaseException:
        ingest.discard(open_txn, key=key, scan_id=scan.id, drop_scan=scan_id is None)
        raise
    # The score counts every unresolved finding of the environment: read after the flip with no
    # write lock held (at 100,000 findings it was most of the flip), then stored with the
    # scan's completion, so that a completed scan always has its summary.
    with open_txn(False) as session:
        summary = _summary(session, environment, report, now)
    with open_txn(True) as session:
        ran = repository.get_scan(session, scan.id)
        assert ran is not None
        if ran.started_at is not None:
            summary["scan_duration_ms"] = round((now - ran.started_at).total_seconds() * 1000)
        ran.summary = summary
        ran.status, ran.completed_at, ran.error_message = "completed", now, None
        session.flush()
        result = _result(ran, report, scope, (plan.new, plan.reopened, len(plan.gone)))
    log.info(
        "scan_imported",
        scan_id=str(scan.id),
        findings=len(plan.findings),
        plan_s=round(planned - started, 3),
        stage_s=round(staged - planned, 3),
        flip_s=round(flipped - staged, 3),
        summary_s=round(time.perf_counter() - flipped, 3),
    )
    return result


def _scan_for(
    session: Session,
    *,
    scan_id: uuid.UUID | None,
    scan_type: str,
    environment: str,
    now: datetime,
) -> SecurityScan:
    if scan_id is not None:
        scan = repository.get_scan(session, scan_id)
        if scan is None:
            raise NotFound(f"scan {scan_id} does not exist")
        return scan
    scan = SecurityScan(
        id=uuid.uuid4(),
        type=scan_type,
        environment=environment,
        status="running",
        started_at=now,
    )
    repository.add(session, scan)
    return scan


def _complete(
    session: Session,
    scan: SecurityScan,
    report: ParsedReport,
    scope: str,
    counts: tuple[int, int, int],
    failure: str,
    now: datetime,
) -> dict[str, Any]:
    """A scan whose report says its scanner failed: stored as failed, resolving nothing."""
    scan.status, scan.completed_at, scan.error_message = "failed", now, failure
    session.flush()
    return _result(scan, report, scope, counts)


def _result(
    scan: SecurityScan, report: ParsedReport, scope: str, counts: tuple[int, int, int]
) -> dict[str, Any]:
    new, reopened, resolved = counts
    return {
        "scan": SecurityScanRead.model_validate(scan).model_dump(mode="json"),
        "tool": report.tool,
        "format": report.format,
        "target": scope,
        "results": report.results,
        "findings": len(report.findings),
        "new": new,
        "reopened": reopened,
        "resolved": resolved,
    }


def _audit(
    session: Session,
    scan_id: uuid.UUID,
    status: str,
    report: ParsedReport,
    scope: str,
    audit_context: AuditContext | None,
) -> None:
    if audit_context is None:
        return
    audit.record(
        session,
        context=audit_context,
        action="scan.import",
        target_type="scan",
        target_id=str(scan_id),
        details={
            "tool": report.tool,
            "format": report.format,
            "findings": len(report.findings),
            "status": status,
            "target": scope,
        },
    )


def _summary(
    session: Session, environment: str, report: ParsedReport, now: datetime
) -> dict[str, Any]:
    counts = lifecycle.severity_counts(f.severity for f in report.findings)
    # The score weighs the environment's unresolved findings.
    open_counts = repository.open_counts(session, environment=environment, now=now)
    return {
        "total_findings": len(report.findings),
        "critical_findings": counts["critical"],
        "high_findings": counts["high"],
        "medium_findings": counts["medium"],
        "low_findings": counts["low"],
        "scan_duration_ms": 0,
        "compliance_score": lifecycle.compliance_score(open_counts),
    }


# --- findings as they stand now -------------------------------------------------------------


def current_findings(
    session: Session,
    *,
    environment: str | None,
    severity: str | None = None,
    status: str | None = None,
    overdue: bool | None = None,
    scan_type: str | None = None,
    tool: str | None = None,
    target: str | None = None,
    cwe: str | None = None,
    finding_id: uuid.UUID | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """The latest occurrence of every finding identity, with its lifecycle state and SLA, up to
    ``limit`` of them, newest first. ``finding_id``: only the identity that this occurrence (the
    latest or an older one) is of."""
    return findings_page(
        session,
        environment=environment,
        severity=severity,
        status=status,
        overdue=overdue,
        scan_type=scan_type,
        tool=tool,
        target=target,
        cwe=cwe,
        finding_id=finding_id,
        limit=limit,
    ).items


FINDING_FIELDS = (
    "id",
    "scan_id",
    "severity",
    "title",
    "description",
    "location",
    "cwe_id",
    "remediation",
    "resolved",
    "resolved_at",
    "created_at",
)


def findings_page(
    session: Session,
    *,
    environment: str | None,
    severity: str | None = None,
    status: str | None = None,
    overdue: bool | None = None,
    scan_type: str | None = None,
    tool: str | None = None,
    target: str | None = None,
    cwe: str | None = None,
    finding_id: uuid.UUID | None = None,
    cursor: str | None = None,
    limit: int = 50,
) -> Page[dict[str, Any]]:
    """A page of ``current_findings``, newest first, and the cursor of the next. Every filter
    is part of the query (state and overdue included), so a page is never short because rows
    were dropped after the limit."""
    now = utcnow()
    slas = {
        name: lifecycle.sla_days(config or {})
        for name, config in repository.environment_configs(session, environment).items()
    }
    rows, last = repository.current_page(
        session,
        now=now,
        slas=slas,
        environment=environment,
        severity=severity,
        status=status,
        overdue=overdue,
        scan_type=scan_type,
        tool=tool,
        target=target,
        cwe=cwe,
        finding_id=finding_id,
        cursor=cursor,
        limit=limit,
    )
    out = []
    for finding, identity, occurrences in rows:
        if identity.environment not in slas:
            slas[identity.environment] = lifecycle.sla_days(
                stored_mapping(require_environment(session, identity.environment).config)
            )
        due_at = lifecycle.due_at(
            identity.first_seen_at, finding.severity, slas[identity.environment]
        )
        state = lifecycle.state(
            identity.status, identity.triage_status, identity.triage_expires_at, now
        )
        triaged = lifecycle.is_triaged(identity.triage_status, identity.triage_expires_at, now)
        out.append(
            {
                **{c: getattr(finding, c) for c in FINDING_FIELDS},
                "fingerprint": identity.fingerprint,
                "environment": identity.environment,
                "tool": identity.tool,
                "target": identity.target,
                "scan_type": identity.scan_type,
                "status": state,
                "first_seen_at": identity.first_seen_at,
                "reopened_count": identity.reopened_count,
                "occurrences": occurrences,
                "triage_status": identity.triage_status if triaged else None,
                "triage_reason": identity.triage_reason if triaged else None,
                "due_at": due_at,
                "overdue": lifecycle.is_overdue(state, due_at, now),
                "resolved_after_s": (identity.resolved_at - identity.first_seen_at).total_seconds()
                if identity.status == "resolved" and identity.resolved_at
                else None,
            }
        )
    next_cursor = None if last is None else encode_cursor(*last)
    return Page(items=out, next_cursor=next_cursor)


def current_finding(session: Session, *, finding_id: uuid.UUID) -> dict[str, Any]:
    """What ``current_findings`` says about the finding this occurrence is of, or NotFound."""
    rows = current_findings(session, environment=None, finding_id=finding_id, limit=1)
    if not rows:
        raise NotFound(f"finding {finding_id} does not exist or was not imported")
    return rows[0]


def count_unresolved(
    session: Session, *, environment: str, severity: str | None = None, overdue: bool = False
) -> int:
    """How many of the environment's findings are unresolved (``repository.unresolved_findings``)
    — past their SLA only, with ``overdue``. What the deployment gates count."""
    slas = None
    if overdue:
        configs = repository.environment_configs(session, environment)
        slas = {name: lifecycle.sla_days(config or {}) for name, config in configs.items()}
    return repository.count_unresolved(
        session, environment=environment, now=utcnow(), severity=severity, overdue_slas=slas
    )


def triage(
    session: Session,
    *,
    finding_id: uuid.UUID,
    status: str,
    reason: str,
    expires_at: datetime | None,
    actor: str,
    audit_context: AuditContext,
) -> None:
    """Record a manual triage on the finding's identity, so later scans carry it forward."""
    occurrence = repository.get_occurrence(session, finding_id)
    if occurrence is None:
        raise NotFound(f"finding {finding_id} does not exist or was not imported")
    identity = repository.get_identity(session, occurrence.identity_id)
    assert identity is not None
    identity.triage_status, identity.triage_reason = status, reason
    identity.triaged_by, identity.triage_expires_at = actor, expires_at
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="finding.triage",
        target_type="finding",
        target_id=str(finding_id),
        details={"status": status, "reason": reason},
    )
