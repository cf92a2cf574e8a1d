from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.audit.models import AuditEvent
from shipboard.audit.schemas import AuditFilter
from shipboard.core.pagination import Page
from shipboard.db.keyset import keyset_page


def add(session: Session, event: AuditEvent) -> None:
    session.add(event)
    session.flush()


def page(
    session: Session, *, filters: AuditFilter, cursor: str | None, limit: int
) -> Page[AuditEvent]:
    stmt = sa.select(AuditEvent)
    for column in ("actor", "action", "target_type", "target_id"):
        value = getattr(filters, column)
        if value is not None:
            stmt = stmt.where(getattr(AuditEvent, column) == value)
    if filters.since is not None:
        stmt = stmt.where(AuditEvent.occurred_at >= filters.since)
    if filters.until is not None:
        stmt = stmt.where(AuditEvent.occurred_at < filters.until)
    return keyset_page(
        session,
        stmt,
        sort_col=AuditEvent.occurred_at,
        id_col=AuditEvent.id,
        cursor=cursor,
        limit=limit,
    )
