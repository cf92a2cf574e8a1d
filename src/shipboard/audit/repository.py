from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.audit.models import AuditEvent
from shipboard.audit.schemas import AuditFilter
from shipboard.core.pagination import Page
from shipboard.db.keyset import filter_by, keyset_page


def add(session: Session, event: AuditEvent) -> None:
    session.add(event)
    session.flush()


def page(
    session: Session, *, filters: AuditFilter, cursor: str | None, limit: int
) -> Page[AuditEvent]:
    stmt = filter_by(
        sa.select(AuditEvent),
        AuditEvent,
        filters,
        equal=("actor", "action", "target_type", "target_id"),
        time_column="occurred_at",
    )
    return keyset_page(
        session,
        stmt,
        sort_col=AuditEvent.occurred_at,
        id_col=AuditEvent.id,
        cursor=cursor,
        limit=limit,
    )
