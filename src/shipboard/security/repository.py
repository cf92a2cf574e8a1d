from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.core.pagination import Page
from shipboard.db.keyset import keyset_page
from shipboard.security.models import SecurityFinding, SecurityScan
from shipboard.security.schemas import SecurityFindingFilter, SecurityScanFilter


def add(session: Session, row: SecurityScan | SecurityFinding) -> None:
    session.add(row)
    session.flush()


def get_scan(session: Session, scan_id: uuid.UUID) -> SecurityScan | None:
    return session.get(SecurityScan, scan_id)


def get_finding(session: Session, finding_id: uuid.UUID) -> SecurityFinding | None:
    return session.get(SecurityFinding, finding_id)


def scan_page(
    session: Session, *, filters: SecurityScanFilter, cursor: str | None, limit: int
) -> Page[SecurityScan]:
    stmt = sa.select(SecurityScan)
    for column in ("environment", "status", "type"):
        value = getattr(filters, column)
        if value is not None:
            stmt = stmt.where(getattr(SecurityScan, column) == value)
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
    stmt = sa.select(SecurityFinding)
    for column in ("scan_id", "severity", "resolved"):
        value = getattr(filters, column)
        if value is not None:
            stmt = stmt.where(getattr(SecurityFinding, column) == value)
    return keyset_page(
        session,
        stmt,
        sort_col=SecurityFinding.created_at,
        id_col=SecurityFinding.id,
        cursor=cursor,
        limit=limit,
    )
