"""Every query of alerting: rules, their alerts, and silences."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shipboard.alerting.evaluation import ACTIVE
from shipboard.alerting.models import Alert, AlertRule, ExternalAlert, Silence
from shipboard.db import keyset
from shipboard.db.engine import is_postgres

# Beside MIGRATION_LOCK_ID (0x5B1B0A4D) and SCHEDULER_LEADER_LOCK (0x5B1B0A50, db/leader.py).
EVALUATION_LOCK = 0x5B1B0A4E


def try_evaluation_lock(session: Session) -> bool:
    """Take the evaluation round's lock for this transaction, unless another round holds it
    (PostgreSQL; SQLite's single writer already keeps two rounds apart)."""
    if not is_postgres(session):
        return True
    return bool(session.scalar(sa.select(sa.func.pg_try_advisory_xact_lock(EVALUATION_LOCK))))


# --- rules ------------------------------------------------------------------------------------


def get_rule(session: Session, rule_id: uuid.UUID) -> AlertRule | None:
    return session.get(AlertRule, rule_id)


def rule_named(session: Session, name: str) -> AlertRule | None:
    return session.scalar(sa.select(AlertRule).where(AlertRule.name == name))


def all_rules(session: Session) -> list[AlertRule]:
    """Every rule, by name."""
    return list(session.scalars(sa.select(AlertRule).order_by(AlertRule.name)))


def enabled_rules(session: Session) -> list[AlertRule]:
    # A stable order: a round writes its rules (and their alerts) in the same order every time.
    stmt = sa.select(AlertRule).where(AlertRule.enabled.is_(True)).order_by(AlertRule.id)
    return list(session.scalars(stmt))


def add_rule(session: Session, rule: AlertRule) -> None:
    session.add(rule)
    session.flush()


def delete_rule(session: Session, rule: AlertRule) -> None:
    """Remove a rule; its alerts go with it (ON DELETE CASCADE)."""
    session.delete(rule)
    session.flush()


# --- alerts -----------------------------------------------------------------------------------


def active_alerts(session: Session, rule_id: uuid.UUID) -> list[Alert]:
    """The rule's pending or firing alerts (one at most, unless stored by hand)."""
    return list(
        session.scalars(sa.select(Alert).where(Alert.rule_id == rule_id, Alert.state.in_(ACTIVE)))
    )


def active_alert(session: Session, rule_id: uuid.UUID) -> Alert | None:
    return session.scalar(
        sa.select(Alert).where(Alert.rule_id == rule_id, Alert.state.in_(ACTIVE)).limit(1)
    )


def add_alert(session: Session, alert: Alert) -> None:
    session.add(alert)


def told_alerts(session: Session) -> list[tuple[Alert, list[str]]]:
    """Firing and resolved alerts with the channels their rule names: what the notifier may
    have to tell."""
    rows = session.execute(
        sa.select(Alert, AlertRule.channels)
        .join(AlertRule, AlertRule.id == Alert.rule_id)
        .where(Alert.state.in_(("firing", "resolved")))
    ).all()
    return [(alert, channels) for alert, channels in rows]


def alert_page(session: Session, *, state: str | None, cursor: str | None, limit: int) -> list[Any]:
    """Up to ``limit + 1`` rows of (alert, rule name), newest change first, after ``cursor``:
    the one past ``limit`` tells the caller that another page follows."""
    stmt = sa.select(Alert, AlertRule.name).join(AlertRule, AlertRule.id == Alert.rule_id)
    if state is not None:
        stmt = stmt.where(Alert.state == state)
    stmt = keyset.after(stmt, sort_col=Alert.updated_at, id_col=Alert.id, cursor=cursor)
    return list(session.execute(stmt.limit(limit + 1)).all())


def alert_with_rule_name(session: Session, alert_id: uuid.UUID) -> tuple[Alert, str] | None:
    row = session.execute(
        sa.select(Alert, AlertRule.name)
        .join(AlertRule, AlertRule.id == Alert.rule_id)
        .where(Alert.id == alert_id)
    ).first()
    return None if row is None else (row[0], row[1])


def alerts_started(
    session: Session, *, environment: str, since: datetime, until: datetime
) -> list[tuple[Alert, str]]:
    """(alert, rule name) of the environment's alerts that started in [since, until)."""
    rows = session.execute(
        sa.select(Alert, AlertRule.name)
        .join(AlertRule, AlertRule.id == Alert.rule_id)
        .where(
            AlertRule.environment == environment, Alert.starts_at >= since, Alert.starts_at < until
        )
    ).all()
    return [(alert, name) for alert, name in rows]


# --- silences ---------------------------------------------------------------------------------


def get_silence(session: Session, silence_id: uuid.UUID) -> Silence | None:
    return session.get(Silence, silence_id)


def active_silences(session: Session, now: datetime) -> list[Silence]:
    return list(
        session.scalars(sa.select(Silence).where(Silence.starts_at <= now, Silence.ends_at > now))
    )


def all_silences(session: Session, *, newest_first: bool = True) -> list[Silence]:
    """Every silence, newest (or oldest) first."""
    order = Silence.created_at.desc() if newest_first else Silence.created_at
    return list(session.scalars(sa.select(Silence).order_by(order)))


def add_silence(session: Session, silence: Silence) -> None:
    session.add(silence)
    session.flush()


# --- external alerts (alerting/external.py) ---------------------------------------------------

EXTERNAL_LIST_LIMIT = 500


_EXTERNAL_COLUMNS = (
    "alertname",
    "status",
    "environment",
    "labels",
    "annotations",
    "starts_at",
    "ends_at",
    "generator_url",
    "receiver",
    "updated_at",
)


def upsert_external(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert or replace external alerts by fingerprint (the last of a fingerprint given twice
    wins), as one statement executed for every row: a delivery of 10,000 alerts one ``merge`` at
    a time (a SELECT and a write each) held SQLite's write lock for six seconds."""
    if not rows:
        return
    latest = list({row["fingerprint"]: row for row in rows}.values())
    insert: Any = postgresql_insert if is_postgres(session) else sqlite_insert
    # The table, not the ORM class: the ORM splits a bulk insert by which values are None.
    stmt = insert(ExternalAlert.__table__)
    stmt = stmt.on_conflict_do_update(
        index_elements=[ExternalAlert.__table__.c.fingerprint],
        set_={name: stmt.excluded[name] for name in _EXTERNAL_COLUMNS},
    )
    session.execute(stmt, latest)


def external_firing(
    session: Session, *, environment: str | None, since: datetime
) -> list[ExternalAlert]:
    """Firing alerts that started at or after ``since``, of one environment (by the labels that
    named it on arrival) or, with None, of all."""
    query = sa.select(ExternalAlert).where(
        ExternalAlert.status == "firing", ExternalAlert.starts_at >= since
    )
    if environment is not None:
        query = query.where(ExternalAlert.environment == environment)
    return list(session.scalars(query.order_by(ExternalAlert.starts_at)))


def list_external(
    session: Session,
    *,
    environment: str | None,
    status: str | None,
    offset: int = 0,
    limit: int = EXTERNAL_LIST_LIMIT,
) -> list[ExternalAlert]:
    """Firing first, newest first (the fingerprint breaks ties, so pages do not overlap)."""
    query = sa.select(ExternalAlert)
    if environment is not None:
        query = query.where(ExternalAlert.environment == environment)
    if status is not None:
        query = query.where(ExternalAlert.status == status)
    order = (
        ExternalAlert.status == "resolved",
        ExternalAlert.starts_at.desc(),
        ExternalAlert.fingerprint,
    )
    return list(session.scalars(query.order_by(*order).offset(offset).limit(limit)))
