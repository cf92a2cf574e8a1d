"""The delivery queue: deliveries are enqueued in the caller's transaction, claimed with a short
lease, and attempted outside any transaction, retried with backoff until sent or given up."""

from __future__ import annotations

import random
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipboard.config import DEFAULT_PUBLIC_URL
from shipboard.core.crypto import Keyring
from shipboard.core.netguard import DEFAULT_POLICY, OutboundPolicy
from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction
from shipboard.notifications import repository, senders
from shipboard.notifications.models import NotificationChannel, NotificationDelivery

log = structlog.get_logger("shipboard.notifications")
MAX_ATTEMPTS = 6
MAX_AGE = timedelta(hours=1)
BACKOFF_BASE_S = 1.0
BACKOFF_CAP_S = 300.0


def enqueue(
    session: Session,
    *,
    channel: NotificationChannel,
    event: str,
    payload: dict[str, Any],
    group_key: str | None = None,
    now: datetime | None = None,
) -> NotificationDelivery:
    """Queue ``payload`` for ``channel``, due at once (in the caller's transaction, so it exists
    only if that commits)."""
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
    repository.add_delivery(session, delivery)
    return delivery


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
        claimed: list[Claimed] = []
        for delivery in repository.due_deliveries(session, now=now, limit=limit):
            channel = repository.get_channel(session, delivery.channel_id)
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
        current = repository.get_delivery(session, delivery_id)
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
