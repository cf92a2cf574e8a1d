"""Silences: mute the notifications of matching alerts for a while."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.orm import Session

from shipboard.alerting import repository
from shipboard.alerting.models import Silence
from shipboard.alerting.schemas import SilenceCreate, SilenceRead
from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.core import patterns
from shipboard.core.errors import InvalidInput, NotFound
from shipboard.core.time import utcnow
from shipboard.notifications import repository as notifications


def create_silence(
    session: Session, *, data: SilenceCreate, creator: str, audit_context: AuditContext
) -> SilenceRead:
    """Mute notifications of alerts whose labels match, from start to end."""
    problems = [
        {"loc": ["body", "matchers", i, "value"], "msg": problem}
        for i, matcher in enumerate(data.matchers)
        if matcher.isRegex and (problem := patterns.regex_problem(matcher.value)) is not None
    ]
    if problems:
        raise InvalidInput(
            f"matchers[{problems[0]['loc'][2]}].value: {problems[0]['msg']}", errors=problems
        )
    now = utcnow()
    starts = data.starts_at or now
    if data.ends_at <= starts:
        raise InvalidInput(
            "ends_at must be after starts_at",
            errors=[{"loc": ["body", "ends_at"], "msg": "not after start"}],
        )
    silence = Silence(
        id=uuid.uuid4(),
        matchers=[m.model_dump() for m in data.matchers],
        starts_at=starts,
        ends_at=data.ends_at,
        created_by=creator,
        comment=data.comment,
        created_at=now,
    )
    repository.add_silence(session, silence)
    audit.record(
        session,
        context=audit_context,
        action="silence.create",
        target_type="silence",
        target_id=str(silence.id),
    )
    return silence_read(silence, now)


def silence_read(silence: Silence, now: datetime) -> SilenceRead:
    return SilenceRead(
        id=silence.id,
        matchers=silence.matchers,
        starts_at=silence.starts_at,
        ends_at=silence.ends_at,
        created_by=silence.created_by,
        comment=silence.comment,
        active=silence.starts_at <= now < silence.ends_at,
    )


def list_silences(session: Session) -> list[SilenceRead]:
    """Silences, newest first."""
    now = utcnow()
    return [silence_read(s, now) for s in repository.all_silences(session)]


def expire_silence(
    session: Session, *, silence_id: uuid.UUID, audit_context: AuditContext
) -> SilenceRead:
    """End a silence now; what still fires is notified again at the next flush."""
    silence = repository.get_silence(session, silence_id)
    if silence is None:
        raise NotFound(f"silence {silence_id} does not exist")
    now = utcnow()
    if silence.ends_at > now:
        silence.ends_at = now
        # Groups muted by it must be told again: forget what they last sent.
        notifications.forget_sent_states(session)
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="silence.expire",
        target_type="silence",
        target_id=str(silence_id),
    )
    return silence_read(silence, now)
