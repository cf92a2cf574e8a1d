from __future__ import annotations

import uuid

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.core.pagination import Page
from shipboard.db.keyset import filter_by, keyset_page
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
        sa.select(SecurityFinding),
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
