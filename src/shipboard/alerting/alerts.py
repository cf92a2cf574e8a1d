"""Alerts as the API, the pages and the notifier show them."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy.orm import Session

from shipboard.alerting import matching, repository
from shipboard.alerting.models import Alert, AlertRule, Silence
from shipboard.alerting.schemas import AlertPage, AlertRead
from shipboard.core.errors import NotFound
from shipboard.core.pagination import encode_cursor
from shipboard.core.time import utcnow
from shipboard.notifications import repository as notifications
from shipboard.notifications import senders
from shipboard.notifications.models import NotificationChannel


def alert_path(alert_id: uuid.UUID) -> str:
    """Where an alert's web page is, below SHIPBOARD_PUBLIC_URL."""
    return f"/alerts/{alert_id}"


def channels_of(session: Session, rule: AlertRule) -> list[NotificationChannel]:
    """The channels the rule names that exist."""
    if not rule.channels:
        return []
    return notifications.channels_named(session, rule.channels)


def webhook_alert(alert: Alert) -> dict[str, Any]:
    """The alert as one entry of Alertmanager's webhook payload."""
    return {
        "status": "firing" if alert.state == "firing" else "resolved",
        "labels": alert.labels,
        "annotations": alert.annotations,
        "startsAt": (alert.starts_at or alert.active_since or utcnow()).isoformat(),
        "endsAt": alert.ends_at.isoformat() if alert.ends_at else senders.ZERO_TIME,
        # A path: the sender prefixes SHIPBOARD_PUBLIC_URL, where the alert's page is.
        "generatorURL": alert_path(alert.id),
        "fingerprint": alert.fingerprint,
    }


def list_alerts(
    session: Session, *, state: str | None = None, cursor: str | None = None, limit: int = 50
) -> AlertPage:
    """Alerts, newest change first, a page at a time; `silenced` tells whether a silence mutes
    them now."""
    rows = repository.alert_page(session, state=state, cursor=cursor, limit=limit)
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1][0].updated_at, rows[-1][0].id)
    silences = repository.active_silences(session, utcnow())
    return AlertPage(
        next_cursor=next_cursor,
        items=[_alert_read(a, name, silences) for a, name in rows],
    )


def get_alert(session: Session, *, alert_id: uuid.UUID) -> AlertRead:
    """One alert with its transitions (the page every link Shipboard sends about it opens)."""
    row = repository.alert_with_rule_name(session, alert_id)
    if row is None:
        raise NotFound(f"alert {alert_id} does not exist (its rule may have been deleted)")
    return _alert_read(row[0], row[1], repository.active_silences(session, utcnow()))


def _alert_read(alert: Alert, rule: str, silences: list[Silence]) -> AlertRead:
    return AlertRead(
        id=alert.id,
        rule_id=alert.rule_id,
        rule=rule,
        fingerprint=alert.fingerprint,
        state=alert.state,
        value=alert.value,
        starts_at=alert.starts_at,
        ends_at=alert.ends_at,
        labels=alert.labels,
        annotations=alert.annotations,
        transitions=alert.transitions,
        silenced=any(matching.matches(s.matchers, alert.labels) for s in silences),
    )


def all_alerts(session: Session, *, state: str | None = None) -> list[AlertRead]:
    """Every alert (in ``state``), page by page: for counts, which a page would cut short."""
    out: list[AlertRead] = []
    cursor: str | None = None
    while True:
        page = list_alerts(session, state=state, cursor=cursor, limit=500)
        out += page.items
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor
