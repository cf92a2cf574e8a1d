"""Every query of the security domain: scans, findings, finding identities, the import guard,
and the one definition of an unresolved finding that gates, pages and reports use."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.core.pagination import Page
from shipboard.db import bulk, keyset
from shipboard.db.engine import is_postgres
from shipboard.db.keyset import filter_by, keyset_page
from shipboard.environments.models import Environment
from shipboard.security.models import (
    FindingIdentity,
    FindingOccurrence,
    ScanRequest,
    SecurityFinding,
    SecurityImport,
    SecurityScan,
)
from shipboard.security.rows import (
    FINDING_COLUMNS,
    ID,
    IDENTITY_COLUMNS,
    OCCURRENCE_COLUMNS,
    RESOLVED_FINDING,
    RESOLVED_IDENTITY,
    SEEN_COLUMNS,
)
from shipboard.security.schemas import SecurityFindingFilter, SecurityScanFilter


def add(session: Session, row: SecurityScan | SecurityFinding | ScanRequest) -> None:
    session.add(row)
    session.flush()


def act_as_system(session: Session) -> None:
    """The system admin's identity for this transaction, as ``system_transaction`` sets it."""
    if is_postgres(session):
        session.execute(
            sa.text(
                "SELECT set_config('shipboard.role', 'admin', true), "
                "set_config('shipboard.user_id', 'system', true)"
            )
        )


def get_scan(session: Session, scan_id: uuid.UUID) -> SecurityScan | None:
    return session.get(SecurityScan, scan_id)


def get_finding(session: Session, finding_id: uuid.UUID) -> SecurityFinding | None:
    return session.get(SecurityFinding, finding_id)


def get_occurrence(session: Session, finding_id: uuid.UUID) -> FindingOccurrence | None:
    return session.get(FindingOccurrence, finding_id)


def get_identity(session: Session, identity_id: uuid.UUID) -> FindingIdentity | None:
    return session.get(FindingIdentity, identity_id)


def scan_page(
    session: Session, *, filters: SecurityScanFilter, cursor: str | None, limit: int
) -> Page[SecurityScan]:
    stmt = filter_by(
        sa.select(SecurityScan), SecurityScan, filters, equal=("environment", "status", "type")
    )
    return keyset_page(
        session,
        stmt,
        sort_col=SecurityScan.started_at,
        id_col=SecurityScan.id,
        cursor=cursor,
        limit=limit,
    )


def finding_page(
    session: Session, *, filters: SecurityFindingFilter, cursor: str | None, limit: int
) -> Page[SecurityFinding]:
    stmt = filter_by(
        sa.select(SecurityFinding).where(
            # What an import in progress has staged is not there until it is flipped.
            SecurityFinding.scan_id.not_in(staged_scans())
        ),
        SecurityFinding,
        filters,
        equal=("scan_id", "severity", "resolved"),
    )
    return keyset_page(
        session,
        stmt,
        sort_col=SecurityFinding.created_at,
        id_col=SecurityFinding.id,
        cursor=cursor,
        limit=limit,
    )


def requested_scan(session: Session, scan_id: uuid.UUID) -> tuple[SecurityScan, ScanRequest] | None:
    """A requested scan still to run (pending, or running when its worker was lost)."""
    row = session.execute(
        sa.select(SecurityScan, ScanRequest)
        .join(ScanRequest, ScanRequest.scan_id == SecurityScan.id)
        .where(SecurityScan.id == scan_id, SecurityScan.status.in_(("pending", "running")))
    ).first()
    return None if row is None else (row[0], row[1])


# --- the import guard -----------------------------------------------------------------------


def get_import(session: Session, scope: str) -> SecurityImport | None:
    """The import in progress in ``scope``, locked on PostgreSQL until the transaction ends."""
    stmt = sa.select(SecurityImport).where(SecurityImport.scope == scope)
    if is_postgres(session):
        stmt = stmt.with_for_update()
    return session.scalars(stmt).first()


def add_import(session: Session, row: SecurityImport) -> None:
    session.add(row)
    session.flush()


def lapsed_imports(session: Session, *, now: datetime, lock: bool = True) -> list[SecurityImport]:
    """Imports whose lease lapsed (their process stopped before they finished)."""
    stmt = sa.select(SecurityImport).where(SecurityImport.expires_at <= now)
    if lock and is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt))


def renew_import(session: Session, *, scope: str, scan_id: uuid.UUID, until: datetime) -> bool:
    """Extend the lease; False if the scope is no longer this import's (it lapsed and another
    import took it over)."""
    result = session.execute(
        sa.update(SecurityImport)
        .where(SecurityImport.scope == scope, SecurityImport.scan_id == scan_id)
        .values(expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_import(session: Session, *, scope: str, scan_id: uuid.UUID) -> None:
    session.execute(
        sa.delete(SecurityImport)
        .where(SecurityImport.scope == scope, SecurityImport.scan_id == scan_id)
        .execution_options(synchronize_session=False)
    )


def staged_scans() -> sa.Select[tuple[uuid.UUID]]:
    """Scans whose import is in progress: what they staged is not there yet for any read."""
    return sa.select(SecurityImport.scan_id)


def discard_staged(session: Session, *, scan_id: uuid.UUID) -> int:
    """Delete what an unfinished import staged: its findings, their occurrences, and the
    identities it created (whose latest finding is one of its own: one seen again moves to its
    new finding only at the flip). Returns how many findings went."""
    staged = sa.select(SecurityFinding.id).where(SecurityFinding.scan_id == scan_id)
    for statement in (
        sa.delete(FindingOccurrence).where(FindingOccurrence.finding_id.in_(staged)),
        sa.delete(FindingIdentity).where(FindingIdentity.latest_finding_id.in_(staged)),
    ):
        session.execute(statement.execution_options(synchronize_session=False))
    result = session.execute(
        sa.delete(SecurityFinding)
        .where(SecurityFinding.scan_id == scan_id)
        .execution_options(synchronize_session=False)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def delete_scan(session: Session, scan_id: uuid.UUID) -> None:
    session.execute(
        sa.delete(SecurityScan)
        .where(SecurityScan.id == scan_id)
        .execution_options(synchronize_session=False)
    )


# --- writing an import ----------------------------------------------------------------------


def known_identities(
    session: Session,
    *,
    environment: str,
    scan_type: str,
    tool: str,
    target: str,
    with_location: bool,
) -> list[Any]:
    """The identities in an import's scope, and those from before targets (target NULL).
    ``with_location``: also the path of each one's latest occurrence (a partial run resolves
    only findings in files it read)."""
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
    if with_location:
        query = sa.select(*columns, SecurityFinding.location).outerjoin(
            SecurityFinding, SecurityFinding.id == FindingIdentity.latest_finding_id
        )
    return list(
        session.execute(
            query.where(
                FindingIdentity.environment == environment,
                FindingIdentity.scan_type == scan_type,
                FindingIdentity.tool == tool,
                # No other import of this scope stages meanwhile (the claim), and one that died
                # was discarded when the claim was taken over.
                sa.or_(FindingIdentity.target == target, FindingIdentity.target.is_(None)),
            )
        )
    )


def insert_findings(session: Session, rows: Sequence[Sequence[Any]]) -> None:
    bulk.insert(session, "security_findings", FINDING_COLUMNS, rows)


def insert_identities(session: Session, rows: Sequence[Sequence[Any]]) -> None:
    bulk.insert(session, "finding_identities", IDENTITY_COLUMNS, rows)


def insert_occurrences(session: Session, rows: Sequence[Sequence[Any]]) -> None:
    bulk.insert(session, "finding_occurrences", OCCURRENCE_COLUMNS, rows)


def update_seen(session: Session, rows: Sequence[Sequence[Any]]) -> None:
    bulk.update(session, "finding_identities", ID, SEEN_COLUMNS, rows)


def advance_seen(session: Session, *, scan_id: uuid.UUID, now: datetime) -> None:
    """Move every identity this scan saw again to its new finding, in one statement run by the
    database (a row per identity from Python was most of a 100,000-result re-import's flip)."""
    occurrence = sa.orm.aliased(FindingOccurrence)
    finding = sa.orm.aliased(SecurityFinding)
    session.execute(
        sa.update(FindingIdentity)
        .where(
            finding.scan_id == scan_id,
            occurrence.finding_id == finding.id,
            FindingIdentity.id == occurrence.identity_id,
            # Identities first seen now point at their finding already.
            FindingIdentity.latest_finding_id != occurrence.finding_id,
        )
        .values(latest_finding_id=occurrence.finding_id, last_seen_at=now)
        .execution_options(synchronize_session=False)
    )


def resolve(session: Session, gone: Sequence[Any], now: datetime) -> None:
    """Resolve identities a scan lacked, and mark their latest finding resolved."""
    bulk.update(
        session,
        "finding_identities",
        ID,
        RESOLVED_IDENTITY,
        [(r.id, "resolved", now) for r in gone],
    )
    bulk.update(
        session,
        "security_findings",
        ID,
        RESOLVED_FINDING,
        [(r.latest_finding_id, True, now) for r in gone if r.latest_finding_id],
    )


# --- unresolved findings: the one definition ------------------------------------------------


def unresolved_identity(now: datetime) -> sa.ColumnElement[bool]:
    """An identity is unresolved while it is open and no triage holds (``lifecycle.state``)."""
    triaged_now = sa.and_(
        FindingIdentity.triage_status.is_not(None),
        sa.or_(
            FindingIdentity.triage_expires_at.is_(None), FindingIdentity.triage_expires_at > now
        ),
    )
    return sa.and_(FindingIdentity.status == "open", sa.not_(triaged_now))


def triaged_identity(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(
        FindingIdentity.status == "open",
        FindingIdentity.triage_status.is_not(None),
        sa.or_(
            FindingIdentity.triage_expires_at.is_(None), FindingIdentity.triage_expires_at > now
        ),
    )


def _late(now: datetime, slas: Mapping[str, Mapping[str, int]]) -> sa.ColumnElement[bool]:
    """Past its SLA: first seen before now minus the days of its severity in its environment."""
    return sa.or_(
        sa.false(),
        *(
            sa.and_(
                FindingIdentity.environment == name,
                SecurityFinding.severity == severity,
                FindingIdentity.first_seen_at < now - timedelta(days=days),
            )
            for name, days_by_severity in slas.items()
            for severity, days in days_by_severity.items()
        ),
    )


def unresolved_findings(
    session: Session,
    *,
    environment: str,
    now: datetime,
    severity: str | None = None,
    overdue_slas: Mapping[str, Mapping[str, int]] | None = None,
) -> sa.Select[Any] | sa.CompoundSelect[Any]:
    """The ids of the environment's unresolved findings: the latest occurrence of each open,
    untriaged identity; and findings written without an identity (the spec's API, another
    tool), not marked resolved, of the latest completed scan of their type. ``overdue_slas``:
    only those past their SLA (only identities know when they were first seen)."""
    tracked = (
        sa.select(SecurityFinding.id)
        .join(FindingIdentity, FindingIdentity.latest_finding_id == SecurityFinding.id)
        .where(
            FindingIdentity.environment == environment,
            unresolved_identity(now),
            SecurityFinding.scan_id.not_in(staged_scans()),
        )
    )
    if severity is not None:
        tracked = tracked.where(SecurityFinding.severity == severity)
    if overdue_slas is not None:
        return tracked.where(_late(now, overdue_slas))
    return sa.union_all(tracked, _untracked(session, environment=environment, severity=severity))


def _untracked(session: Session, *, environment: str, severity: str | None) -> sa.Select[Any]:
    """Findings written without an identity, not marked resolved, of the latest completed scan
    of each type."""
    scans = session.execute(
        sa.select(SecurityScan.id, SecurityScan.type)
        .where(SecurityScan.environment == environment, SecurityScan.status == "completed")
        .order_by(SecurityScan.started_at.desc())
        .limit(500)
    ).all()
    newest: dict[str, uuid.UUID] = {}
    for scan_id, scan_type in scans:
        newest.setdefault(scan_type, scan_id)
    untracked = sa.select(SecurityFinding.id).where(
        SecurityFinding.scan_id.in_(list(newest.values())),
        sa.or_(SecurityFinding.resolved.is_(False), SecurityFinding.resolved.is_(None)),
        ~sa.exists().where(FindingOccurrence.finding_id == SecurityFinding.id),
    )
    if severity is not None:
        untracked = untracked.where(SecurityFinding.severity == severity)
    return untracked


def count_unresolved(
    session: Session,
    *,
    environment: str,
    now: datetime,
    severity: str | None = None,
    overdue_slas: Mapping[str, Mapping[str, int]] | None = None,
) -> int:
    """How many ``unresolved_findings`` there are."""
    ids = unresolved_findings(
        session, environment=environment, now=now, severity=severity, overdue_slas=overdue_slas
    ).subquery()
    return int(session.scalar(sa.select(sa.func.count()).select_from(ids)) or 0)


def open_counts(session: Session, *, environment: str, now: datetime) -> list[tuple[str, int]]:
    """``unresolved_findings`` of the environment by severity, counted by the database (a row
    per finding was seconds of a 100,000-result import): grouped as they are joined, not
    through a list of ids."""
    tracked = (
        sa.select(SecurityFinding.severity, sa.func.count())
        .join(FindingIdentity, FindingIdentity.latest_finding_id == SecurityFinding.id)
        .where(
            FindingIdentity.environment == environment,
            unresolved_identity(now),
            SecurityFinding.scan_id.not_in(staged_scans()),
        )
        .group_by(SecurityFinding.severity)
    )
    counts: dict[str, int] = {}
    for severity, count in session.execute(tracked):
        counts[severity] = counts.get(severity, 0) + count
    untracked = _untracked(session, environment=environment, severity=None)
    for (severity,) in session.execute(
        sa.select(SecurityFinding.severity).where(SecurityFinding.id.in_(untracked))
    ):
        counts[severity] = counts.get(severity, 0) + 1
    return sorted(counts.items())


# --- current findings (the latest occurrence of each identity) ------------------------------


def environment_configs(session: Session, environment: str | None) -> dict[str, Any]:
    """Stored config of one environment, or of all."""
    return dict(
        session.execute(
            sa.select(Environment.name, Environment.config).where(
                sa.true() if environment is None else Environment.name == environment
            )
        ).all()
    )


def current_page(
    session: Session,
    *,
    now: datetime,
    slas: Mapping[str, Mapping[str, int]],
    environment: str | None,
    severity: str | None,
    status: str | None,
    overdue: bool | None,
    scan_type: str | None,
    tool: str | None,
    target: str | None,
    cwe: str | None,
    finding_id: uuid.UUID | None,
    cursor: str | None,
    limit: int,
) -> tuple[list[Any], tuple[datetime, uuid.UUID] | None]:
    """(finding, identity, occurrences) rows of the latest occurrence of each identity, newest
    first, every filter in the query; and the keyset position after the last, if more follow."""
    stmt = (
        sa.select(SecurityFinding, FindingIdentity, FindingOccurrence.occurrences)
        .join(FindingIdentity, FindingIdentity.latest_finding_id == SecurityFinding.id)
        .join(FindingOccurrence, FindingOccurrence.finding_id == SecurityFinding.id)
        .where(SecurityFinding.scan_id.not_in(staged_scans()))
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
    if status == "resolved":
        stmt = stmt.where(FindingIdentity.status == "resolved")
    elif status == "triaged":
        stmt = stmt.where(triaged_identity(now))
    elif status == "open":
        stmt = stmt.where(unresolved_identity(now))
    if overdue is not None:
        late = sa.and_(unresolved_identity(now), _late(now, slas))
        stmt = stmt.where(late if overdue else sa.not_(late))
    stmt = keyset.after(
        stmt, sort_col=FindingIdentity.first_seen_at, id_col=FindingIdentity.id, cursor=cursor
    )
    rows = list(session.execute(stmt.limit(limit + 1)).all())
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, (rows[-1][1].first_seen_at, rows[-1][1].id)
    return rows, None
