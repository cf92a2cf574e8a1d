"""Notifications' background work: sending due deliveries, on every node (rows are claimed with
``SKIP LOCKED``), on a few sender threads, never inside a transaction while a receiver answers.
Group flushing runs with alert evaluation (``alerting/tasks.py``), which feeds it."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.engine import Engine

from shipboard.config import DEFAULT_PUBLIC_URL
from shipboard.core.crypto import Keyring
from shipboard.core.netguard import OutboundPolicy
from shipboard.notifications import delivery


def loops(
    engine: Engine,
    keyring: Keyring,
    *,
    poll_s: float = 0.5,
    max_attempts: int = delivery.MAX_ATTEMPTS,
    max_age_s: float = delivery.MAX_AGE.total_seconds(),
    outbound: OutboundPolicy | None = None,
    public_url: str = DEFAULT_PUBLIC_URL,
) -> list[tuple[str, delivery.Dispatcher]]:
    return [
        (
            "notify",
            delivery.Dispatcher(
                engine,
                keyring,
                poll_s=poll_s,
                max_attempts=max_attempts,
                max_age=timedelta(seconds=max_age_s),
                outbound=outbound or OutboundPolicy(),
                public_url=public_url,
            ),
        )
    ]
