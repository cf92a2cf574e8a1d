"""Notification channels, Alertmanager-style grouping, and deliveries retried with backoff."""

from __future__ import annotations

import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.config import DEFAULT_PUBLIC_URL
from shipboard.core.crypto import Keyring
from shipboard.core.errors import Conflict, InvalidInput, NotFound
from shipboard.core.netguard import DEFAULT_POLICY, OutboundPolicy
from shipboard.core.redaction import REDACTED, redact
from shipboard.core.time import utcnow
from shipboard.db.engine import is_postgres, system_transaction
from shipboard.notifications import senders
from shipboard.notifications.models import (
    NotificationChannel,
    NotificationDelivery,
    NotificationGroup,
)
from shipboard.notifications.schemas import (
    SECRET_KEYS,
    ChannelCreate,
    ChannelRead,
    DeliveryPage,
    DeliveryRead,
)

log = structlog.get_logger("shipboard.notifications")
MAX_ATTEMPTS = 6
MAX_AGE = timedelta(hours=1)
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0
# Prometheus' defaults: firing alerts go to Alertmanager again every minute, each valid for
# four times that (or four evaluation intervals, if longer), so an alert stays active exactly as
# long as it fires and a Shipboard that stops sending lets it lapse.
ALERTMANAGER_RESEND_S = 60.0
VALID_FOR_RESENDS = 4


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
    if session.scalar(sa.select(NotificationChannel).where(NotificationChannel.name == data.name)):
        raise Conflict(f"channel {data.name!r} already exists")
    channel = NotificationChannel(id=uuid.uuid4(), name=data.name, created_at=utcnow())
    _store(channel, data, keyring)
    session.add(channel)
    session.flush()
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
    channel = session.scalar(
        sa.select(NotificationChannel).where(NotificationChannel.name == data.name)
    )
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
    rows = session.scalars(sa.select(NotificationChannel).order_by(NotificationChannel.name))
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
    rows = session.scalars(sa.select(NotificationChannel).order_by(NotificationChannel.name))
    return [channel_read(c) for c in rows]


def require_channel(session: Session, channel_id: uuid.UUID) -> NotificationChannel:
    channel = session.get(NotificationChannel, channel_id)
    if channel is None:
        raise NotFound(f"channel {channel_id} does not exist")
    return channel


def delete_channel(session: Session, *, channel_id: uuid.UUID, audit_context: AuditContext) -> None:
    """Remove a channel with its pending deliveries."""
    channel = require_channel(session, channel_id)
    session.delete(channel)
    session.flush()
    audit.record(
        session,
        context=audit_context,
        action="channel.delete",
        target_type="channel",
        target_id=channel.name,
    )


def delete_channel_named(session: Session, *, name: str, audit_context: AuditContext) -> None:
    """Remove the channel called ``name`` with its pending deliveries."""
    channel = session.scalar(sa.select(NotificationChannel).where(NotificationChannel.name == name))
    if channel is None:
        raise NotFound(f"channel {name!r} does not exist")
    delete_channel(session, channel_id=channel.id, audit_context=audit_context)


def list_deliveries(session: Session, *, channel_id: uuid.UUID, limit: int = 100) -> DeliveryPage:
    """A channel's deliveries, newest first, each with every attempt."""
    require_channel(session, channel_id)
    rows = session.scalars(
        sa.select(NotificationDelivery)
        .where(NotificationDelivery.channel_id == channel_id)
        .order_by(NotificationDelivery.created_at.desc())
        .limit(limit)
    )
    return DeliveryPage(items=[_delivery_read(d) for d in rows])


def _delivery_read(d: NotificationDelivery) -> DeliveryRead:
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


def enqueue(
    session: Session,
    *,
    channel: NotificationChannel,
    event: str,
    payload: dict[str, Any],
    group_key: str | None = None,
    now: datetime | None = None,
) -> NotificationDelivery:
    now = now or utcnow()
    delivery = NotificationDelivery(
        id=uuid.uuid4(),
        channel_id=channel.id,
        group_key=group_key,
        event=event,
        payload=payload,
        status="pending",
        attempts=[],
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    session.flush()
    return delivery


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


# --- grouping -------------------------------------------------------------------------------


def webhook_payload(
    receiver: str, status: str, alerts: list[dict[str, Any]], group_labels: dict[str, str]
) -> dict[str, Any]:
    """Alertmanager's webhook payload, version 4."""

    def common(key: str) -> dict[str, str]:
        if not alerts:
            return {}
        shared = dict(alerts[0][key])
        for alert in alerts[1:]:
            shared = {k: v for k, v in shared.items() if alert[key].get(k) == v}
        return shared

    return {
        "version": "4",
        "receiver": receiver,
        "status": status,
        "alerts": alerts,
        "groupLabels": group_labels,
        "commonLabels": common("labels"),
        "commonAnnotations": common("annotations"),
        # A path: the sender makes every link absolute with SHIPBOARD_PUBLIC_URL (senders.py).
        "externalURL": "/",
        "groupKey": "{}:{" + ",".join(f'{k}="{v}"' for k, v in sorted(group_labels.items())) + "}",
        "truncatedAlerts": 0,
    }


def group_key_for(
    channel: NotificationChannel, labels: dict[str, str]
) -> tuple[str, dict[str, str]]:
    group_labels = {k: labels.get(k, "") for k in channel.group_by}
    return ",".join(f"{k}={v}" for k, v in sorted(group_labels.items())), group_labels


def touch_group(
    session: Session, *, channel: NotificationChannel, labels: dict[str, str], now: datetime
) -> None:
    """Make sure an aggregation group exists for an alert routed to ``channel``."""
    key, group_labels = group_key_for(channel, labels)
    if session.get(NotificationGroup, (channel.id, key)) is None:
        session.add(
            NotificationGroup(
                channel_id=channel.id, group_key=key, group_labels=group_labels, first_seen_at=now
            )
        )
        session.flush()


def flush_groups(
    session: Session,
    *,
    now: datetime,
    alerts_for: Any,
    alertmanager_resend_s: float = ALERTMANAGER_RESEND_S,
    eval_interval_s: float = 15.0,
) -> int:
    """Send each group whose state is due: group_wait for a new group, group_interval after a
    change, repeat_interval while nothing changes. ``alerts_for(channel, group_labels)`` gives
    the group's current alerts as webhook alert dicts (firing, and resolved since last send).

    An Alertmanager channel is sent to as Prometheus does instead: every change at once, the
    firing alerts again every ``alertmanager_resend_s``, each with an ``endsAt`` a few intervals
    ahead (Alertmanager does the grouping and waiting itself)."""
    sent = 0
    valid_for = timedelta(seconds=VALID_FOR_RESENDS * max(alertmanager_resend_s, eval_interval_s))
    for group in list(session.scalars(sa.select(NotificationGroup))):
        channel = session.get(NotificationChannel, group.channel_id)
        if channel is None:
            continue
        to_alertmanager = channel.kind == "alertmanager"
        wait_s, interval_s, repeat_s = (
            (0.0, 0.0, alertmanager_resend_s)
            if to_alertmanager
            else (channel.group_wait_s, channel.group_interval_s, channel.repeat_interval_s)
        )
        alerts = [
            a
            for a in alerts_for(channel, group.group_labels, group.last_sent_at)
            # Alertmanager must hear of a resolution, or it keeps the alert until endsAt.
            if a["status"] == "firing" or channel.send_resolved or to_alertmanager
        ]
        state = {a["fingerprint"]: a["status"] for a in alerts}
        firing = [a for a in alerts if a["status"] == "firing"]
        last = group.last_sent_state or {}
        if group.last_sent_at is None:
            due = bool(firing) and now >= group.first_seen_at + timedelta(seconds=wait_s)
        elif state != {k: v for k, v in last.items() if k in state} or set(state) - set(last):
            due = bool(alerts) and now >= group.last_sent_at + timedelta(seconds=interval_s)
        else:
            due = bool(firing) and now >= group.last_sent_at + timedelta(seconds=repeat_s)
        if not due:
            if not firing and group.last_sent_at is not None and not alerts:
                session.delete(group)  # everything resolved and told: the group is done
            continue
        status = "firing" if firing else "resolved"
        if to_alertmanager:
            ends_at = (now + valid_for).isoformat()
            alerts = [{**a, "endsAt": ends_at} if a["status"] == "firing" else a for a in alerts]
        enqueue(
            session,
            channel=channel,
            event=f"alert.{status}",
            group_key=group.group_key,
            payload=webhook_payload(channel.name, status, alerts, group.group_labels),
            now=now,
        )
        group.last_sent_at = now
        group.last_sent_state = {**last, **state}
        sent += 1
    session.flush()
    return sent


# --- delivery -------------------------------------------------------------------------------


def backoff(attempt: int, rng: random.Random | None = None) -> float:
    """Exponential backoff with "equal jitter": uniform in [c/2, c], c = min(cap, base·2^n)."""
    ceiling = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2**attempt)
    return (rng or random).uniform(ceiling / 2, ceiling)


Claimed = tuple[uuid.UUID, str, dict[str, Any], dict[str, str], dict[str, Any]]
CLAIM_LEASE = timedelta(seconds=60)


def claim_due(
    engine: Engine, keyring: Keyring, *, now: datetime | None = None, limit: int = 20
) -> list[Claimed]:
    """Take up to ``limit`` due deliveries for one attempt each: their next attempt moves a
    short lease ahead, so a crashed sender's delivery is retried, and never sent twice at once.
    Returns (id, channel kind, config, decrypted secrets, payload) for :func:`attempt`."""
    now = now or utcnow()
    with system_transaction(engine) as session:
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
        claimed: list[Claimed] = []
        for pending in session.scalars(stmt):
            delivery = pending
            channel = session.get(NotificationChannel, delivery.channel_id)
            if channel is None:
                continue
            delivery.next_attempt_at = now + CLAIM_LEASE
            secrets = {k: keyring.decrypt(v) for k, v in channel.secrets.items()}
            # Decrypted only here, for the sender: the URL is among the encrypted fields.
            claimed.append(
                (
                    delivery.id,
                    channel.kind,
                    {**channel.config, **secrets},
                    secrets,
                    delivery.payload,
                )
            )
    return claimed


def attempt(
    engine: Engine,
    claimed: Claimed,
    *,
    now: datetime | None = None,
    max_attempts: int = MAX_ATTEMPTS,
    max_age: timedelta = MAX_AGE,
    outbound: OutboundPolicy = DEFAULT_POLICY,
    public_url: str = DEFAULT_PUBLIC_URL,
) -> bool:
    """Send one claimed delivery once, outside any transaction, and record the attempt. The
    next attempt is scheduled ``backoff`` after this one *ended*: a receiver that times out
    must not eat the delay. ``now`` is when the attempt starts (a test's clock). True if sent."""
    delivery_id, kind, config, secrets, payload = claimed
    now = now or utcnow()
    started = utcnow()
    ok, status_code, error = senders.send(
        kind, config, secrets, payload, outbound=outbound, public_url=public_url
    )
    took = utcnow() - started
    with system_transaction(engine) as session:
        current = session.get(NotificationDelivery, delivery_id)
        if current is None:
            return False  # its channel was deleted meanwhile
        delivery = current
        record = {
            "at": started.isoformat(),
            "ok": ok,
            "status_code": status_code,
            "error": error,
            "duration_ms": round(took.total_seconds() * 1000, 1),
        }
        delivery.attempts = [*delivery.attempts, record]
        ended = now + took
        if ok:
            delivery.status = "sent"
            delivery.sent_at = utcnow()
            delivery.next_attempt_at = None
        elif len(delivery.attempts) >= max_attempts or ended - delivery.created_at > max_age:
            delivery.status = "failed"
            delivery.next_attempt_at = None
        else:
            delivery.next_attempt_at = ended + timedelta(seconds=backoff(len(delivery.attempts)))
    return ok


def send_due(
    engine: Engine,
    keyring: Keyring,
    *,
    now: datetime | None = None,
    limit: int = 20,
    max_attempts: int = MAX_ATTEMPTS,
    max_age: timedelta = MAX_AGE,
    outbound: OutboundPolicy = DEFAULT_POLICY,
    public_url: str = DEFAULT_PUBLIC_URL,
) -> int:
    """Attempt every due delivery once, one after the other; never holds a transaction while
    talking to a receiver. A delivery fails for good after ``max_attempts`` attempts or once
    older than ``max_age``. (The scheduler sends in parallel: :class:`Dispatcher`.)"""
    now = now or utcnow()
    claimed = claim_due(engine, keyring, now=now, limit=limit)
    for one in claimed:
        attempt(
            engine,
            one,
            now=now,
            max_attempts=max_attempts,
            max_age=max_age,
            outbound=outbound,
            public_url=public_url,
        )
    return len(claimed)


class Dispatcher:
    """Sends deliveries on a few threads of its own, so one receiver that hangs until its
    timeout delays neither the others nor alert evaluation. Claims only as many deliveries as it
    has idle senders: what it claimed is sent well within the claim's lease."""

    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        *,
        senders_n: int = 4,
        poll_s: float = 0.5,
        max_attempts: int = MAX_ATTEMPTS,
        max_age: timedelta = MAX_AGE,
        outbound: OutboundPolicy = DEFAULT_POLICY,
        public_url: str = DEFAULT_PUBLIC_URL,
    ) -> None:
        self.outbound = outbound
        self.public_url = public_url
        self.engine = engine
        self.keyring = keyring
        self.senders_n = senders_n
        self.poll_s = poll_s
        self.max_attempts = max_attempts
        self.max_age = max_age
        self._busy = 0
        self._lock = threading.Lock()
        self.wake = threading.Event()

    def run(self, stop: threading.Event) -> None:
        with ThreadPoolExecutor(self.senders_n, thread_name_prefix="shipboard-notify") as pool:
            while not stop.is_set():
                try:
                    self.dispatch(pool)
                except Exception:
                    log.exception("notification_dispatch_failed")
                self.wake.wait(self.poll_s)
                self.wake.clear()

    def dispatch(self, pool: ThreadPoolExecutor) -> int:
        with self._lock:
            idle = self.senders_n - self._busy
        if idle <= 0:
            return 0
        claimed = claim_due(self.engine, self.keyring, limit=idle)
        for one in claimed:
            with self._lock:
                self._busy += 1
            pool.submit(self._send, one)
        return len(claimed)

    def _send(self, claimed: Claimed) -> None:
        try:
            attempt(
                self.engine,
                claimed,
                max_attempts=self.max_attempts,
                max_age=self.max_age,
                outbound=self.outbound,
                public_url=self.public_url,
            )
        except Exception:
            # The claim's lease runs out and the delivery is attempted again.
            log.exception("notification_attempt_failed", delivery_id=str(claimed[0]))
        finally:
            with self._lock:
                self._busy -= 1
            self.wake.set()


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
    channels = session.scalars(
        sa.select(NotificationChannel).where(
            NotificationChannel.name.in_([str(n) for n in names]),
            NotificationChannel.kind != "alertmanager",
        )
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
