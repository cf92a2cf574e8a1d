"""Importing a scan report: one completed scan with its findings, and the lifecycle of every
finding across scans of the same environment, scan type and tool — all in one transaction."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.core.errors import InvalidInput, NotFound
from shipboard.core.pagination import Page, encode_cursor
from shipboard.core.time import utcnow
from shipboard.db import bulk, keyset
from shipboard.environments.models import Environment
from shipboard.environments.service import require_environment
from shipboard.environments.validation import stored_mapping
from shipboard.security.importers import ImportFailed, ParsedFinding, ParsedReport, parse_report
from shipboard.security.importers.common import REPORT_TRIAGER, path_of
from shipboard.security.models import (
    FindingIdentity,
    FindingOccurrence,
    SecurityFinding,
    SecurityScan,
)
from shipboard.security.schemas import SecurityScanRead

WEIGHTS = {"critical": 10, "high": 5, "medium": 3, "low": 1}
# DefectDojo's defaults; an environment overrides them in config.security.sla_days.
DEFAULT_SLA_DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 120}


def sla_days(environment_config: object) -> dict[str, int]:
    # Stored config is read as it is: whatever is not an object falls back to the defaults.
    security = stored_mapping(stored_mapping(environment_config).get("security"))
    custom = stored_mapping(security.get("sla_days"))
    return {
        severity: int(custom.get(severity, days))
        if isinstance(custom.get(severity, days), int)
        else days
        for severity, days in DEFAULT_SLA_DAYS.items()
    }


def import_report(
    session: Session,
    *,
    environment: str,
    data: bytes,
    scan_type: str | None,
    tool: str | None,
    audit_context: AuditContext | None,
    now: datetime | None = None,
    scan: SecurityScan | None = None,
    target: str | None = None,
    report: ParsedReport | None = None,
) -> dict[str, Any]:
    """Parse, store the scan and its findings, resolve what is gone, reopen what came back.
    ``scan``: a requested scan that ran (it is completed here), instead of a new one.
    ``target``: what was scanned (else what the report names, else ""); the lifecycle runs
    per environment, scan type, tool and target. ``report``: ``data`` already parsed (``parse``)
    before the transaction began, so that parsing holds no lock."""
    require_environment(session, environment)
    if report is None:
        report = parse(data, scan_type=scan_type, tool=tool)
    now = now or utcnow()
    scope = target or report.target or ""
    # A report that says its scanner failed, with nothing found, is not a clean scan: stored
    # as failed, it resolves nothing.
    failure = report.outcome.failure if not report.findings else None
    status = "failed" if failure else "completed"
    if scan is None:
        scan = SecurityScan(
            id=uuid.uuid4(),
            type=report.scan_type,
            environment=environment,
            status=status,
            started_at=now,
            completed_at=now,
        )
        session.add(scan)
    else:
        scan.status, scan.completed_at = status, now
    scan.error_message = failure
    session.flush()
    new = reopened = resolved = 0
    if failure is None:
        new, reopened, resolved = _apply_lifecycle(session, report, environment, scope, scan, now)
        scan.summary = _summary(session, environment, report.findings)
        if scan.started_at is not None:
            scan.summary["scan_duration_ms"] = round((now - scan.started_at).total_seconds() * 1000)
    session.flush()
    if audit_context is not None:
        audit.record(
            session,
            context=audit_context,
            action="scan.import",
            target_type="scan",
            target_id=str(scan.id),
            details={
                "tool": report.tool,
                "format": report.format,
                "findings": len(report.findings),
                "status": status,
                "target": scope,
            },
        )
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


def parse(data: bytes, *, scan_type: str | None, tool: str | None) -> ParsedReport:
    """The report in ``data``, or InvalidInput saying what was expected. Pure: callers parse
    before their write transaction begins (a 20 MB report parses for seconds, and on SQLite a
    write transaction holds the database's only write lock)."""
    try:
        return parse_report(data, scan_type=scan_type, tool=tool)
    except ImportFailed as exc:
        raise InvalidInput(str(exc), errors=[{"loc": ["body", "file"], "msg": str(exc)}]) from exc


FINDING_COLUMNS = (
    bulk.Column("id", "uuid"),
    bulk.Column("scan_id", "uuid"),
    bulk.Column("severity", "text"),
    bulk.Column("title", "text"),
    bulk.Column("description", "text"),
    bulk.Column("location", "text"),
    bulk.Column("cwe_id", "text"),
    bulk.Column("remediation", "text"),
    bulk.Column("resolved", "bool"),
    bulk.Column("created_at", "timestamp"),
)
IDENTITY_COLUMNS = (
    bulk.Column("id", "uuid"),
    bulk.Column("environment", "text"),
    bulk.Column("scan_type", "text"),
    bulk.Column("tool", "text"),
    bulk.Column("target", "text"),
    bulk.Column("fingerprint", "text"),
    bulk.Column("rule_id", "text"),
    bulk.Column("status", "text"),
    bulk.Column("first_seen_at", "timestamp"),
    bulk.Column("last_seen_at", "timestamp"),
    bulk.Column("reopened_count", "int"),
    bulk.Column("latest_finding_id", "uuid"),
    bulk.Column("triage_status", "text"),
    bulk.Column("triage_reason", "text"),
    bulk.Column("triaged_by", "text"),
)
SEEN_COLUMNS = (
    # An identity adopted from before targets, or from the previous fingerprint scheme, takes
    # this scan's target and its current fingerprint.
    bulk.Column("target", "text"),
    bulk.Column("fingerprint", "text"),
    bulk.Column("status", "text"),
    bulk.Column("resolved_at", "timestamp"),
    bulk.Column("reopened_count", "int"),
    bulk.Column("last_seen_at", "timestamp"),
    bulk.Column("latest_finding_id", "uuid"),
    bulk.Column("triage_status", "text"),
    bulk.Column("triage_reason", "text"),
    bulk.Column("triaged_by", "text"),
)
OCCURRENCE_COLUMNS = (
    bulk.Column("finding_id", "uuid"),
    bulk.Column("identity_id", "uuid"),
    bulk.Column("occurrences", "int"),
    bulk.Column("reopened", "bool"),
    bulk.Column("suppressed", "bool"),
)
ID = bulk.Column("id", "uuid")


def _apply_lifecycle(
    session: Session,
    report: ParsedReport,
    environment: str,
    target: str,
    scan: SecurityScan,
    now: datetime,
) -> tuple[int, int, int]:
    """Store the findings under their identities; resolve the identities the report lacks.
    Returns (new, reopened, resolved).

    A handful of bulk statements (findings, new identities, the identities seen again,
    occurrences, resolutions) whatever the report's size: a 20,000-result report is not
    20,000 round trips, and no ORM object is made per finding."""
    outcome = report.outcome
    partial = outcome.failure is not None or outcome.covered is not None or bool(outcome.excluded)
    # Ids as text: a UUID object per known identity was a tenth of a re-import, and the ids
    # only travel back into bulk statements, which take text.
    columns = [
        sa.cast(FindingIdentity.id, sa.Text).label("id"),
        FindingIdentity.target,
        FindingIdentity.fingerprint,
        FindingIdentity.status,
        FindingIdentity.resolved_at,
        FindingIdentity.reopened_count,
        sa.cast(FindingIdentity.latest_finding_id, sa.Text).label("latest_finding_id"),
        FindingIdentity.triage_status,
        FindingIdentity.triage_reason,
        FindingIdentity.triaged_by,
    ]
    query = sa.select(*columns)
    if partial:
        # A partial run resolves only findings in files it read: their path is on the
        # latest occurrence.
        query = sa.select(*columns, SecurityFinding.location).outerjoin(
            SecurityFinding, SecurityFinding.id == FindingIdentity.latest_finding_id
        )
    scoped: dict[str, Any] = {}
    legacy: dict[str, Any] = {}  # identities from before targets (NULL), adopted when seen
    for row in session.execute(
        query.where(
            FindingIdentity.environment == environment,
            FindingIdentity.scan_type == report.scan_type,
            FindingIdentity.tool == report.tool,
            sa.or_(FindingIdentity.target == target, FindingIdentity.target.is_(None)),
        )
    ):
        (legacy if row.target is None else scoped)[row.fingerprint] = row
    claimed: set[str] = set()

    def match(parsed: ParsedFinding) -> Any:
        prints = (parsed.fingerprint, parsed.legacy_fingerprint)
        for candidate in (known.get(fp) for fp in prints if fp for known in (scoped, legacy)):
            if candidate is not None and candidate.id not in claimed:
                claimed.add(candidate.id)
                return candidate
        return None

    findings: list[tuple[Any, ...]] = []
    created: list[tuple[Any, ...]] = []
    seen_again: list[tuple[Any, ...]] = []
    occurrences: list[tuple[Any, ...]] = []
    new = reopened = 0
    finding_ids = bulk.uuid7_strings(len(report.findings))
    identity_ids = iter(bulk.uuid7_strings(len(report.findings)))
    for parsed, finding_id in zip(report.findings, finding_ids, strict=True):
        findings.append(
            (
                finding_id,
                scan.id,
                parsed.severity,
                parsed.title,
                parsed.description or parsed.title,
                parsed.location,
                parsed.cwe_id,
                parsed.remediation,
                False,
                now,
            )
        )
        identity = match(parsed)
        was_resolved = identity is not None and identity.status == "resolved"
        # A person's triage carries forward; one the report gave is the report's to lift.
        manual = (
            identity is not None
            and identity.triage_status is not None
            and identity.triaged_by not in (None, REPORT_TRIAGER)
        )
        triage: tuple[str | None, str | None, str | None] = (
            (identity.triage_status, identity.triage_reason, identity.triaged_by)
            if manual and identity is not None
            else (*parsed.triage, REPORT_TRIAGER)
            if parsed.triage is not None
            else (None, None, None)
        )
        if identity is None:
            identity_id = next(identity_ids)
            created.append(
                (
                    identity_id,
                    environment,
                    report.scan_type,
                    report.tool,
                    target,
                    parsed.fingerprint,
                    parsed.rule_id,
                    "open",
                    now,
                    now,
                    0,
                    finding_id,
                    *triage,
                )
            )
            new += 1
        else:
            identity_id = identity.id
            reopened += was_resolved
            seen_again.append(
                (
                    identity_id,
                    target,
                    parsed.fingerprint,
                    "open",
                    None if was_resolved else identity.resolved_at,
                    identity.reopened_count + was_resolved,
                    now,
                    finding_id,
                    *triage,
                )
            )
        occurrences.append(
            (finding_id, identity_id, parsed.occurrences, was_resolved, parsed.suppressed)
        )
    # Unclaimed identities from before targets go as they would have gone before.
    gone = [
        row
        for row in (*scoped.values(), *legacy.values())
        if row.status == "open"
        and row.id not in claimed
        and (not partial or outcome.may_resolve(path_of(row.location)))
    ]
    session.flush()  # the scan row, which the findings refer to
    # Parents before children: findings, then identities (which point at their latest
    # finding), then the occurrences that join the two.
    bulk.insert(session, "security_findings", FINDING_COLUMNS, findings)
    bulk.insert(session, "finding_identities", IDENTITY_COLUMNS, created)
    bulk.update(session, "finding_identities", ID, SEEN_COLUMNS, seen_again)
    bulk.insert(session, "finding_occurrences", OCCURRENCE_COLUMNS, occurrences)
    bulk.update(
        session,
        "finding_identities",
        ID,
        (bulk.Column("status", "text"), bulk.Column("resolved_at", "timestamp")),
        [(row.id, "resolved", now) for row in gone],
    )
    bulk.update(
        session,
        "security_findings",
        ID,
        (bulk.Column("resolved", "bool"), bulk.Column("resolved_at", "timestamp")),
        [(row.latest_finding_id, True, now) for row in gone if row.latest_finding_id],
    )
    return new, reopened, len(gone)


def _summary(session: Session, environment: str, findings: list[ParsedFinding]) -> dict[str, Any]:
    counts = dict.fromkeys(WEIGHTS, 0)
    for finding in findings:
        counts[finding.severity] += 1
    # The score weighs the environment's open, untriaged findings (Dependency-Track's weights).
    # Counted by the database: a row per open finding was seconds of a 100,000-result import,
    # inside its write transaction.
    open_counts = session.execute(
        sa.select(SecurityFinding.severity, sa.func.count())
        .join(FindingIdentity, FindingIdentity.latest_finding_id == SecurityFinding.id)
        .where(
            FindingIdentity.environment == environment,
            FindingIdentity.status == "open",
            FindingIdentity.triage_status.is_(None),
        )
        .group_by(SecurityFinding.severity)
    ).all()
    penalty = sum(WEIGHTS[severity] * count for severity, count in open_counts)
    return {
        "total_findings": len(findings),
        "critical_findings": counts["critical"],
        "high_findings": counts["high"],
        "medium_findings": counts["medium"],
        "low_findings": counts["low"],
        "scan_duration_ms": 0,
        "compliance_score": float(max(0, 100 - penalty)),
    }


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
    stmt = (
        sa.select(SecurityFinding, FindingIdentity, FindingOccurrence.occurrences)
        .join(FindingIdentity, FindingIdentity.latest_finding_id == SecurityFinding.id)
        .join(FindingOccurrence, FindingOccurrence.finding_id == SecurityFinding.id)
    )
    equal = (
        (FindingIdentity.environment, environment),
        (SecurityFinding.severity, severity),
        (FindingIdentity.scan_type, scan_type),
        (FindingIdentity.tool, tool),
        (FindingIdentity.target, target),
        (SecurityFinding.cwe_id, cwe),
    )
    for column, value in equal:
        if value is not None:
            stmt = stmt.where(column == value)
    if finding_id is not None:
        stmt = stmt.where(
            FindingIdentity.id
            == sa.select(FindingOccurrence.identity_id)
            .where(FindingOccurrence.finding_id == finding_id)
            .scalar_subquery()
        )
    triaged_now = sa.and_(
        FindingIdentity.triage_status.is_not(None),
        sa.or_(
            FindingIdentity.triage_expires_at.is_(None), FindingIdentity.triage_expires_at > now
        ),
    )
    is_open = sa.and_(FindingIdentity.status == "open", sa.not_(triaged_now))
    if status == "resolved":
        stmt = stmt.where(FindingIdentity.status == "resolved")
    elif status == "triaged":
        stmt = stmt.where(FindingIdentity.status == "open", triaged_now)
    elif status == "open":
        stmt = stmt.where(is_open)
    slas = {
        name: sla_days(config or {})
        for name, config in session.execute(
            sa.select(Environment.name, Environment.config).where(
                sa.true() if environment is None else Environment.name == environment
            )
        )
    }
    if overdue is not None:
        # Past its SLA: first seen before now minus the days of its severity in its environment.
        late = sa.and_(
            is_open,
            sa.or_(
                sa.false(),
                *(
                    sa.and_(
                        FindingIdentity.environment == name,
                        SecurityFinding.severity == severity_name,
                        FindingIdentity.first_seen_at < now - timedelta(days=days),
                    )
                    for name, days_by_severity in slas.items()
                    for severity_name, days in days_by_severity.items()
                ),
            ),
        )
        stmt = stmt.where(late if overdue else sa.not_(late))
    stmt = keyset.after(
        stmt, sort_col=FindingIdentity.first_seen_at, id_col=FindingIdentity.id, cursor=cursor
    )
    rows = session.execute(stmt.limit(limit + 1)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1][1].first_seen_at, rows[-1][1].id)
    out = []
    for finding, identity, occurrences in rows:
        if identity.environment not in slas:
            slas[identity.environment] = sla_days(
                stored_mapping(require_environment(session, identity.environment).config)
            )
        due_at = identity.first_seen_at + timedelta(
            days=slas[identity.environment][finding.severity]
        )
        triaged = identity.triage_status is not None and (
            identity.triage_expires_at is None or identity.triage_expires_at > now
        )
        state = "resolved" if identity.status == "resolved" else "triaged" if triaged else "open"
        is_overdue = state == "open" and now > due_at
        out.append(
            {
                **{
                    c: getattr(finding, c)
                    for c in (
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
                },
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
                "overdue": is_overdue,
                "resolved_after_s": (identity.resolved_at - identity.first_seen_at).total_seconds()
                if identity.status == "resolved" and identity.resolved_at
                else None,
            }
        )
    return Page(items=out, next_cursor=next_cursor)


def current_finding(session: Session, *, finding_id: uuid.UUID) -> dict[str, Any]:
    """What ``current_findings`` says about the finding this occurrence is of, or NotFound."""
    rows = current_findings(session, environment=None, finding_id=finding_id, limit=1)
    if not rows:
        raise NotFound(f"finding {finding_id} does not exist or was not imported")
    return rows[0]


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
    occurrence = session.get(FindingOccurrence, finding_id)
    if occurrence is None:
        raise NotFound(f"finding {finding_id} does not exist or was not imported")
    identity = session.get(FindingIdentity, occurrence.identity_id)
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
