"""Every query of notifications: channels, aggregation groups and deliveries."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.db.engine import is_postgres
from shipboard.notifications.models import (
    NotificationChannel,
    NotificationDelivery,
    NotificationGroup,
)

# --- channels ---------------------------------------------------------------------------------


def get_channel(session: Session, channel_id: uuid.UUID) -> NotificationChannel | None:
    return session.get(NotificationChannel, channel_id)


def channel_named(session: Session, name: str) -> NotificationChannel | None:
    return session.scalar(sa.select(NotificationChannel).where(NotificationChannel.name == name))


def all_channels(session: Session) -> list[NotificationChannel]:
    """Every channel, by name."""
    return list(session.scalars(sa.select(NotificationChannel).order_by(NotificationChannel.name)))


def channel_names(session: Session) -> set[str]:
    """The name of every channel."""
    return set(session.scalars(sa.select(NotificationChannel.name)))


def channels_named(
    session: Session, names: Iterable[str], *, except_kind: str | None = None
) -> list[NotificationChannel]:
    """The channels among ``names`` that exist (in no particular order), but those of
    ``except_kind``."""
    stmt = sa.select(NotificationChannel).where(NotificationChannel.name.in_(list(names)))
    if except_kind is not None:
        stmt = stmt.where(NotificationChannel.kind != except_kind)
    return list(session.scalars(stmt))


def existing_channel_names(session: Session, names: Iterable[str]) -> set[str]:
    """Which of ``names`` are channels."""
    return set(
        session.scalars(
            sa.select(NotificationChannel.name).where(NotificationChannel.name.in_(list(names)))
        )
    )


def add_channel(session: Session, channel: NotificationChannel) -> None:
    session.add(channel)
    session.flush()


def delete_channel(session: Session, channel: NotificationChannel) -> None:
    """Remove a channel; its groups and deliveries go with it (ON DELETE CASCADE)."""
    session.delete(channel)
    session.flush()


# --- groups -----------------------------------------------------------------------------------


def get_group(session: Session, channel_id: uuid.UUID, group_key: str) -> NotificationGroup | None:
    return session.get(NotificationGroup, (channel_id, group_key))


def all_groups(session: Session) -> list[NotificationGroup]:
    return list(session.scalars(sa.select(NotificationGroup)))


def add_group(session: Session, group: NotificationGroup) -> None:
    session.add(group)
    session.flush()


def delete_group(session: Session, group: NotificationGroup) -> None:
    session.delete(group)


def forget_sent_states(session: Session) -> None:
    """Make every group tell its alerts again at its next flush (a silence ended early)."""
    for group in session.scalars(sa.select(NotificationGroup)):
        group.last_sent_state = None


# --- deliveries -------------------------------------------------------------------------------


def get_delivery(session: Session, delivery_id: uuid.UUID) -> NotificationDelivery | None:
    return session.get(NotificationDelivery, delivery_id)


def deliveries_of(
    session: Session, channel_id: uuid.UUID, *, limit: int
) -> list[NotificationDelivery]:
    """A channel's deliveries, newest first."""
    return list(
        session.scalars(
            sa.select(NotificationDelivery)
            .where(NotificationDelivery.channel_id == channel_id)
            .order_by(NotificationDelivery.created_at.desc())
            .limit(limit)
        )
    )


def add_delivery(session: Session, delivery: NotificationDelivery) -> None:
    session.add(delivery)
    session.flush()


def due_deliveries(session: Session, *, now: datetime, limit: int) -> list[NotificationDelivery]:
    """Up to ``limit`` pending deliveries due at ``now``, earliest first; on PostgreSQL locked
    for this transaction, skipping those another sender holds."""
    stmt = (
        sa.select(NotificationDelivery)
        .where(
            NotificationDelivery.status == "pending",
            NotificationDelivery.next_attempt_at <= now,
        )
        .order_by(NotificationDelivery.next_attempt_at)
        .limit(limit)
    )
    if is_postgres(session):
        stmt = stmt.with_for_update(skip_locked=True)
    return list(session.scalars(stmt))
