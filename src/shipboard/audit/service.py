"""The audit trail: who changed what, when, from where. Written in the changing transaction."""

from __future__ import annotations

import unicodedata
import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from shipboard.audit import repository
from shipboard.audit.models import AuditEvent
from shipboard.audit.schemas import AuditEventPage, AuditEventRead, AuditFilter
from shipboard.core.pagination import clamp_limit
from shipboard.core.time import utcnow

ACTOR_MAX = 200
# Control and format characters (ANSI escapes, CR/LF that forge a second line, NUL, bidi
# overrides, zero-width joiners), line/paragraph separators and lone surrogates: none belongs
# in a name, and each can disguise one when the log is read in a terminal or a page.
_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def normalise_name(text: str | None) -> str | None:
    """An actor or target as the audit log stores it: without control or format characters,
    at most ``ACTOR_MAX`` characters. A failed sign-in records whatever name was typed."""
    if text is None:
        return None
    kept = "".join(c for c in text if unicodedata.category(c) not in _INVISIBLE)
    return kept[:ACTOR_MAX]


@dataclass(frozen=True)
class AuditContext:
    """Who is acting and from where; bound once per request (or per CLI command)."""

    actor: str
    actor_role: str | None = None
    source_ip: str | None = None
    request_id: str | None = None
    # Set by work that changes many objects as one act (`shipboard apply`): the events of its
    # parts are gathered here and the act records them as one event.
    collected: list[dict[str, Any]] | None = field(default=None, compare=False)


def record(
    session: Session,
    *,
    context: AuditContext,
    action: str,
    target_type: str | None = None,
    target_id: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one event. Callers pass details without secret values; this never stores one."""
    if context.collected is not None:
        context.collected.append(
            {"action": action, "target_type": target_type, "target_id": target_id}
        )
        return
    repository.add(
        session,
        AuditEvent(
            id=uuid.uuid4(),
            occurred_at=utcnow(),
            actor=normalise_name(context.actor) or "anonymous",
            actor_role=context.actor_role,
            action=action,
            target_type=target_type,
            target_id=normalise_name(target_id),
            source_ip=context.source_ip,
            request_id=context.request_id,
            details=details,
        ),
    )


def list_events(
    session: Session, *, filters: AuditFilter, cursor: str | None = None, limit: int | None = None
) -> AuditEventPage:
    """Events newest first, filtered by actor, action, target and time."""
    page = repository.page(session, filters=filters, cursor=cursor, limit=clamp_limit(limit))
    return AuditEventPage(
        items=[AuditEventRead.model_validate(e) for e in page.items], next_cursor=page.next_cursor
    )
