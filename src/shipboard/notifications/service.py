"""Notification channels: created, replaced and deleted with their credentials encrypted; test
messages; the events of an environment told to its channels."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.core.crypto import Keyring
from shipboard.core.errors import Conflict, InvalidInput, NotFound
from shipboard.core.netguard import DEFAULT_POLICY, OutboundPolicy
from shipboard.core.redaction import REDACTED, redact
from shipboard.core.time import utcnow
from shipboard.notifications import repository, senders
from shipboard.notifications.delivery import enqueue
from shipboard.notifications.grouping import webhook_payload
from shipboard.notifications.models import NotificationChannel, NotificationDelivery
from shipboard.notifications.schemas import (
    SECRET_KEYS,
    ChannelCreate,
    ChannelRead,
    DeliveryPage,
    DeliveryRead,
)

# --- channels -------------------------------------------------------------------------------


def create_channel(
    session: Session,
    *,
    data: ChannelCreate,
    keyring: Keyring,
    audit_context: AuditContext,
    outbound: OutboundPolicy = DEFAULT_POLICY,
) -> ChannelRead:
    """Create a channel; credential values in its config are stored encrypted. A URL the
    outbound policy refuses (link-local, cloud metadata) is refused here, before it is stored."""
    _check_outbound(data, outbound)
    if repository.channel_named(session, data.name) is not None:
        raise Conflict(f"channel {data.name!r} already exists")
    channel = NotificationChannel(id=uuid.uuid4(), name=data.name, created_at=utcnow())
    _store(channel, data, keyring)
    repository.add_channel(session, channel)
    audit.record(
        session,
        context=audit_context,
        action="channel.create",
        target_type="channel",
        target_id=data.name,
        details={"kind": data.kind},
    )
    return channel_read(channel)


def update_channel(
    session: Session,
    *,
    data: ChannelCreate,
    keyring: Keyring,
    audit_context: AuditContext,
    outbound: OutboundPolicy = DEFAULT_POLICY,
) -> ChannelRead:
    """Replace the channel named ``data.name`` in place (its id and deliveries are kept)."""
    _check_outbound(data, outbound)
    channel = repository.channel_named(session, data.name)
    if channel is None:
        raise NotFound(f"channel {data.name!r} does not exist")
    _store(channel, data, keyring)
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="channel.update",
        target_type="channel",
        target_id=data.name,
        details={"kind": data.kind},
    )
    return channel_read(channel)


def channel_specs(session: Session, *, keyring: Keyring) -> list[ChannelCreate]:
    """Every channel as the write shape that would create it, credentials decrypted (for
    configuration as code: diff and export; never returned as is)."""
    rows = repository.all_channels(session)
    specs: list[ChannelCreate] = []
    for c in rows:
        config = {**c.config, **{k: keyring.decrypt(v) for k, v in (c.secrets or {}).items()}}
        specs.append(
            ChannelCreate.model_construct(
                name=c.name,
                kind=c.kind,  # type: ignore[arg-type]
                config=config,
                group_by=list(c.group_by),
                group_wait_s=c.group_wait_s,
                group_interval_s=c.group_interval_s,
                repeat_interval_s=c.repeat_interval_s,
                send_resolved=c.send_resolved,
            )
        )
    return specs


def _check_outbound(data: ChannelCreate, outbound: OutboundPolicy) -> None:
    # An email channel's SMTP host is a destination like a webhook's URL: same policy.
    field = "host" if data.kind == "email" else "url"
    value = data.config.get(field)
    if not isinstance(value, str):
        return
    reason = outbound.host_refusal(value) if field == "host" else outbound.url_refusal(value)
    if reason:
        raise InvalidInput(
            f"config.{field} is refused: {reason}",
            errors=[{"loc": ["body", "config", field], "msg": reason}],
        )


def _store(channel: NotificationChannel, data: ChannelCreate, keyring: Keyring) -> None:
    channel.kind = data.kind
    channel.config = {k: v for k, v in data.config.items() if k not in SECRET_KEYS}
    channel.secrets = {
        k: keyring.encrypt(str(v)) for k, v in data.config.items() if k in SECRET_KEYS and v
    }
    channel.group_by = data.group_by
    channel.group_wait_s = data.group_wait_s
    channel.group_interval_s = data.group_interval_s
    channel.repeat_interval_s = data.repeat_interval_s
    channel.send_resolved = data.send_resolved


def channel_read(channel: NotificationChannel) -> ChannelRead:
    return ChannelRead(
        id=channel.id,
        name=channel.name,
        kind=channel.kind,
        # Webhook URLs are credentials too (Slack's and Discord's paths, ?token=, user:pass@).
        config=redact({**channel.config, **dict.fromkeys(channel.secrets, REDACTED)}),
        group_by=channel.group_by,
        group_wait_s=channel.group_wait_s,
        group_interval_s=channel.group_interval_s,
        repeat_interval_s=channel.repeat_interval_s,
        send_resolved=channel.send_resolved,
    )


def list_channels(session: Session) -> list[ChannelRead]:
    """All channels, by name."""
    return [channel_read(c) for c in repository.all_channels(session)]


def require_channel(session: Session, channel_id: uuid.UUID) -> NotificationChannel:
    channel = repository.get_channel(session, channel_id)
    if channel is None:
        raise NotFound(f"channel {channel_id} does not exist")
    return channel


def delete_channel(session: Session, *, channel_id: uuid.UUID, audit_context: AuditContext) -> None:
    """Remove a channel with its pending deliveries."""
    channel = require_channel(session, channel_id)
    repository.delete_channel(session, channel)
    audit.record(
        session,
        context=audit_context,
        action="channel.delete",
        target_type="channel",
        target_id=channel.name,
    )


def delete_channel_named(session: Session, *, name: str, audit_context: AuditContext) -> None:
    """Remove the channel called ``name`` with its pending deliveries."""
    channel = repository.channel_named(session, name)
    if channel is None:
        raise NotFound(f"channel {name!r} does not exist")
    delete_channel(session, channel_id=channel.id, audit_context=audit_context)


def list_deliveries(session: Session, *, channel_id: uuid.UUID, limit: int = 100) -> DeliveryPage:
    """A channel's deliveries, newest first, each with every attempt."""
    require_channel(session, channel_id)
    rows = repository.deliveries_of(session, channel_id, limit=limit)
    return DeliveryPage(items=[delivery_read(d) for d in rows])


def delivery_read(d: NotificationDelivery) -> DeliveryRead:
    return DeliveryRead(
        id=d.id,
        channel_id=d.channel_id,
        event=d.event,
        group_key=d.group_key,
        status=d.status,
        attempts=d.attempts,
        next_attempt_at=d.next_attempt_at,
        created_at=d.created_at,
        sent_at=d.sent_at,
    )


def enqueue_test(
    session: Session, *, channel_id: uuid.UUID, audit_context: AuditContext
) -> NotificationDelivery:
    """A test message through a channel, in the shape its receiver expects."""
    channel = require_channel(session, channel_id)
    audit.record(
        session,
        context=audit_context,
        action="channel.test",
        target_type="channel",
        target_id=channel.name,
    )
    now = utcnow()
    alert = {
        "status": "firing",
        "labels": {"alertname": "ShipboardTest", "severity": "low"},
        "annotations": {"summary": f"Test message from Shipboard for channel {channel.name}"},
        "startsAt": now.isoformat(),
        "endsAt": senders.ZERO_TIME,
        "generatorURL": "/",
        "fingerprint": "0000000000000000",
    }
    return enqueue(
        session,
        channel=channel,
        event="test",
        payload=webhook_payload(channel.name, "firing", [alert], {"alertname": "ShipboardTest"}),
    )


# --- deployment events ----------------------------------------------------------------------

DEPLOYMENT_EVENTS = {
    "building": "deployment.started",
    "success": "deployment.succeeded",
    "failed": "deployment.failed",
    "rolled_back": "deployment.rolled_back",
}


def notify_environment(
    session: Session,
    *,
    environment_config: dict[str, Any],
    event: str,
    message: str,
    details: dict[str, Any],
    now: datetime | None = None,
    link: str | None = None,
) -> int:
    """Queue an event for the channels named in the environment's ``config.notification_channels``
    (Alertmanager channels take alerts only and are skipped). ``link`` is the path of the page
    that shows what happened; the sender makes it absolute (``url``)."""
    names = environment_config.get("notification_channels") or []
    if not isinstance(names, list) or not names:
        return 0
    channels = repository.channels_named(
        session, [str(n) for n in names], except_kind="alertmanager"
    )
    count = 0
    for channel in channels:
        enqueue(
            session,
            channel=channel,
            event=event,
            now=now,
            payload={
                "event": event,
                "message": message,
                **details,
                **({"url": link} if link else {}),
            },
        )
        count += 1
    return count
