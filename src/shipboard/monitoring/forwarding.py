"""Forwarding ingested points to the user's store by Prometheus remote write, from a durable
queue (issue 23).

Every batch Shipboard stores (REST, OTLP, scrape) is also encoded as one ``WriteRequest`` and
queued in ``remote_write_queue`` inside the same transaction, so a point acknowledged to a
client survives the store being down and Shipboard restarting. The forwarder sends the queue
oldest first and stops at the first batch the store cannot take now, so samples of a series
reach the store in the order they were queued (stores refuse out-of-order samples). A batch
leaves the queue when the store answers 2xx, or when it answers a 4xx that no retry can fix
(the spec: such data is dropped; it is counted and logged with the store's reason). 401, 403, 404
and 407 are not such answers: they say Shipboard's own settings are wrong (credentials, URL,
tenant), so the batch is kept, the queue is *blocked* (an error log, ``/metrics``) and retried
until the setting is fixed. A full queue refuses new points with 503 and ``Retry-After`` rather
than dropping any silently.
"""

from __future__ import annotations

import re
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipboard.config import Settings
from shipboard.core import deadline
from shipboard.core.errors import ServiceUnavailable
from shipboard.core.nulguard import scrub
from shipboard.core.redaction import redact_credentials, redact_url
from shipboard.core.time import utcnow
from shipboard.db import bulk
from shipboard.db.engine import system_transaction
from shipboard.monitoring import remote_write as rw
from shipboard.monitoring import repository

log = structlog.get_logger("shipboard.forwarding")
MAX_BACKOFF_S = 300.0
# A blocked queue waits for someone to fix a setting and restart: it should move within a
# minute of that, not after the five minutes a flapping store earns.
BLOCKED_BACKOFF_S = 60.0
RETRY_AFTER_S = 30
DROPPED_KEPT = timedelta(days=1)
# Of a store's answer, only enough to say why it refused.
ERROR_BYTES = 4096
# Requests one refused batch may take to find the series the store refuses (halving it).
SALVAGE_POSTS = 64


@dataclass(frozen=True)
class Forwarding:
    """Where points go, and how much may wait for the store (SHIPBOARD_REMOTE_WRITE_*)."""

    url: str
    bearer_token: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    timeout_s: float = 10.0
    # One POST, however slowly the store answers: the run holds the task's lease meanwhile.
    total_s: float = 30.0
    max_queue_bytes: int = 256 * 1024 * 1024
    # SHIPBOARD_REMOTE_WRITE_HEADERS (core/extraheaders.py): a tenant, an API key.
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)


@dataclass
class QueueStatus:
    batches: int
    points: int
    size: int
    oldest_age_s: float
    dropped_last_hour: int
    # The HTTP status of the oldest waiting batch's last failed attempt (0: none, or no answer)
    # and whether that status says the store refuses Shipboard itself (rw.BLOCKING_STATUSES).
    last_error_status: int = 0
    blocked: bool = False


@dataclass
class Forwarded:
    sent_points: int = 0
    dropped_points: int = 0
    retrying: bool = False
    blocked_status: int | None = None  # set when the store refused Shipboard (rw.blocks)
    errors: list[str] = field(default_factory=list)


def forwarding_from(settings: Settings) -> Forwarding | None:
    """The process's forwarding, or None when SHIPBOARD_REMOTE_WRITE_URL is unset."""
    if not settings.remote_write_url:
        return None
    return Forwarding(
        url=settings.remote_write_url,
        bearer_token=settings.remote_write_bearer_token,
        username=settings.remote_write_username,
        password=settings.remote_write_password,
        ca_file=settings.remote_write_ca_file,
        headers=settings.extra_headers("remote_write"),
        max_queue_bytes=int(settings.remote_write_queue_mb * 1024 * 1024),
    )


def enqueue(
    session: Session, *, forwarding: Forwarding | None, rows: Sequence[Sequence[Any]]
) -> None:
    """Queue points (tuples in ``repository.POINT_COLUMNS`` order) for the store, in the
    caller's transaction. Nothing happens when forwarding is off."""
    if forwarding is None or not rows:
        return
    grouped: dict[tuple[Any, ...], list[tuple[int, float]]] = defaultdict(list)
    for _id, name, value, timestamp, environment, tags, source in rows:
        key = (name, environment, source, tuple(sorted((tags or {}).items())))
        grouped[key].append((_millis(timestamp), float(value)))
    series: list[rw.Series] = []
    for (name, environment, source, tags), samples in grouped.items():
        one, collisions = rw.series_for(
            name=name, environment=environment, source=source, tags=dict(tags), samples=samples
        )
        for collision in collisions:
            log.warning("remote write label collision", detail=collision)
        series.append(one)
    payload = rw.encode(series)
    waiting = repository.remote_queue_size(session)
    if waiting + len(payload) > forwarding.max_queue_bytes:
        raise ServiceUnavailable(
            f"{waiting >> 20} MiB of points are waiting for the metrics store "
            f"(SHIPBOARD_REMOTE_WRITE_QUEUE_MB); nothing was stored, retry later",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    repository.remote_enqueue(
        session,
        id=uuid.UUID(bulk.uuid7_strings(1)[0]),
        payload=payload,
        points=len(rows),
        now=utcnow(),
    )


def queue_status(session: Session, *, now: datetime | None = None) -> QueueStatus:
    now = now or utcnow()
    batches, points, size, oldest = repository.remote_queue_stats(session)
    age = (now - oldest).total_seconds() if oldest else 0.0
    last_error = repository.remote_head_error(session) if batches else None
    status = error_status(last_error)
    return QueueStatus(
        batches=batches,
        points=points,
        size=size,
        oldest_age_s=max(age, 0.0),
        dropped_last_hour=repository.remote_dropped_since(session, now - timedelta(hours=1)),
        last_error_status=status,
        blocked=rw.blocks(status, last_error or ""),
    )


_STATUS_ERROR = re.compile(r"(\d{3}): ")


def error_status(last_error: str | None) -> int:
    """The HTTP status a batch's ``last_error`` records (``"401: …"``), 0 for none."""
    match = _STATUS_ERROR.match(last_error or "")
    return int(match.group(1)) if match else 0


class Forwarder:
    """Sends the queue to the store. One runs per cluster (on the elected node), so batches
    leave in order; the ``httpx.Client`` is the caller's to close when it passes one."""

    def __init__(self, forwarding: Forwarding, *, client: httpx.Client | None = None) -> None:
        self.forwarding = forwarding
        # A queue blocked by a setting (rw.blocks) is tried at once by a forwarder that may
        # carry the fixed setting, not after the backoff the old one earned.
        self._unblock_first = True
        auth = None
        headers = {
            **dict(forwarding.headers),
            "Content-Type": rw.CONTENT_TYPE,
            "Content-Encoding": rw.CONTENT_ENCODING,
            "X-Prometheus-Remote-Write-Version": rw.PROTOCOL_VERSION,
            "User-Agent": "shipboard",
        }
        if forwarding.bearer_token:
            headers["Authorization"] = f"Bearer {forwarding.bearer_token}"
        elif forwarding.username is not None:
            auth = httpx.BasicAuth(forwarding.username, forwarding.password or "")
        self._client = client or deadline.client(
            timeout_s=forwarding.timeout_s,
            total_s=forwarding.total_s,
            verify=forwarding.ca_file or True,
            headers=headers,
            auth=auth,
            follow_redirects=False,
        )

    def close(self) -> None:
        self._client.close()

    def forward_once(self, engine: Engine, *, limit: int = 50) -> Forwarded:
        """Send up to ``limit`` due batches, oldest first; stop at the first one the store
        cannot take now (it is retried after a backoff)."""
        result = Forwarded()
        now = utcnow()
        with system_transaction(engine) as session:
            if self._unblock_first:
                self._unblock_first = True
                head_error = repository.remote_head_error(session)
                if head_error and rw.blocks(error_status(head_error), head_error):
                    repository.remote_retry_head_now(session, now=now)
            repository.remote_prune_dropped(session, now - DROPPED_KEPT)
            due = repository.remote_due(session, now=now, limit=limit)
        for batch_id, payload, points, attempts in due:
            try:
                status, text = self._post(payload)
            except httpx.HTTPError as exc:
                self._later(engine, batch_id, attempts, f"no answer ({type(exc).__name__})")
                result.retrying = True
                result.errors.append(f"no answer ({type(exc).__name__})")
                break
            if 200 <= status < 300:
                with system_transaction(engine) as session:
                    repository.remote_delete(session, batch_id)
                result.sent_points += points
                continue
            reason = f"{status}: {text}"
            blocked = rw.blocks(status, reason)
            if blocked or rw.retryable(status):
                self._later(engine, batch_id, attempts, reason, blocked_by=blocked)
                result.retrying = True
                if blocked:
                    result.blocked_status = status
                result.errors.append(reason)
                break
            # A request the store will never take (bad labels, samples too old or out of
            # order): keeping it would block every batch behind it. One bad series makes
            # Prometheus refuse the whole request, so the others are sent on their own first.
            salvaged = self._salvage(engine, batch_id, payload, attempts, reason, result)
            if salvaged is not None:
                if salvaged:
                    break
                continue
            log.error("remote write refused a batch; dropped", points=points, reason=reason)
            with system_transaction(engine) as session:
                repository.remote_drop(session, batch_id, now=utcnow(), error=reason)
            result.dropped_points += points
            result.errors.append(reason)
        return result

    def _salvage(
        self,
        engine: Engine,
        batch_id: uuid.UUID,
        payload: bytes,
        attempts: int,
        reason: str,
        result: Forwarded,
    ) -> bool | None:
        """Send a refused batch of several series in halves, and halves of the refused halves,
        so that only the series the store refuses are dropped; None when the batch is one
        series. True when the store stopped taking anything (the rest waits, as any batch
        that could not go now), False when the batch is done with."""
        series = rw.decode(payload)
        if len(series) < 2:
            return None
        half = len(series) // 2
        pending, dropped, posts = [series[:half], series[half:]], 0, 1
        while pending:
            part = pending.pop(0)
            count = sum(len(one.samples) for one in part)
            if posts >= SALVAGE_POSTS:  # the search went on long enough: the rest is dropped
                dropped += count
                continue
            posts += 1
            try:
                status, text = self._post(rw.encode(part))
            except httpx.HTTPError as exc:
                answer, status = f"no answer ({type(exc).__name__})", 0
            else:
                answer = f"{status}: {text}"
                if 200 <= status < 300:
                    result.sent_points += count
                    continue
            if status == 0 or rw.blocks(status, answer) or rw.retryable(status):
                rest = [one for chunk in [part, *pending] for one in chunk]
                blocked = rw.blocks(status, answer)
                self._rest_later(engine, batch_id, attempts, rest, dropped, answer, blocked)
                result.retrying = True
                result.dropped_points += dropped
                result.errors.append(answer)
                if blocked:
                    result.blocked_status = status
                return True
            if len(part) == 1:
                dropped += count
                continue
            middle = len(part) // 2
            pending[0:0] = [part[:middle], part[middle:]]
        if dropped:
            log.error(
                "remote write refused series of a batch; dropped", points=dropped, reason=reason
            )
        with system_transaction(engine) as session:
            if dropped:
                repository.remote_drop(
                    session, batch_id, now=utcnow(), error=reason, points=dropped
                )
            else:
                repository.remote_delete(session, batch_id)
        result.dropped_points += dropped
        result.errors.append(reason)
        return False

    def _rest_later(
        self,
        engine: Engine,
        batch_id: uuid.UUID,
        attempts: int,
        rest: list[rw.Series],
        dropped: int,
        reason: str,
        blocked: bool,
    ) -> None:
        """Keep what the store has not taken of a batch for a later attempt; what it refused
        for good so far is counted as dropped, in a row of its own."""
        with system_transaction(engine) as session:
            payload = rw.encode(rest)
            points = sum(len(one.samples) for one in rest)
            repository.remote_replace(session, batch_id, payload=payload, points=points)
            if dropped:
                tombstone = uuid.UUID(bulk.uuid7_strings(1)[0])
                now = utcnow()
                repository.remote_enqueue(
                    session, id=tombstone, payload=b"", points=dropped, now=now
                )
                repository.remote_drop(session, tombstone, now=now, error=reason)
        self._later(engine, batch_id, attempts, reason, blocked_by=blocked)

    def _post(self, payload: bytes) -> tuple[int, str]:
        """The store's status and the start of its answer, without the credentials sent (an
        error body is logged and kept with the batch); no more of the body is read."""
        with self._client.stream("POST", self.forwarding.url, content=payload) as answer:
            head = bytearray()
            for chunk in answer.iter_bytes():
                head += chunk
                if len(head) >= ERROR_BYTES:
                    break
            status = answer.status_code
        forwarding = self.forwarding
        text = redact_credentials(
            head[:ERROR_BYTES].decode(errors="replace"),
            token=forwarding.bearer_token,
            username=forwarding.username,
            password=forwarding.password,
            extra=[value for _, value in forwarding.headers],
        )
        return status, scrub(text)[:300]

    def _later(
        self,
        engine: Engine,
        batch_id: uuid.UUID,
        attempts: int,
        reason: str,
        *,
        blocked_by: bool = False,
    ) -> None:
        # The exponent is bounded: a queue blocked for days would overflow 2.0**attempts.
        delay = min(MAX_BACKOFF_S, 2.0 ** min(attempts, 16))
        if blocked_by:
            delay = min(delay, BLOCKED_BACKOFF_S)
            status = error_status(reason)
            # An error, not a warning: nothing is forwarded until someone fixes a setting.
            # The status and the store's URL (its credentials redacted) only, never a header.
            log.error(
                "remote write blocked: the store refuses Shipboard; the queue waits",
                status=status,
                store=redact_url(self.forwarding.url),
                fix=_BLOCKED_FIX.get(status, _BLOCKED_FIX[404]),
                reason=reason,
                retry_in_s=delay,
            )
        else:
            log.warning("remote write failed; retrying", reason=reason, retry_in_s=delay)
        with system_transaction(engine) as session:
            repository.remote_retry_later(
                session,
                batch_id,
                at=utcnow() + timedelta(seconds=delay),
                error=reason,
            )


_BLOCKED_FIX = {
    401: "check SHIPBOARD_REMOTE_WRITE_BEARER_TOKEN or SHIPBOARD_REMOTE_WRITE_USERNAME/_PASSWORD",
    403: "the credentials may not write there (or to that tenant); check them",
    404: "check SHIPBOARD_REMOTE_WRITE_URL (VictoriaMetrics and Prometheus: /api/v1/write, "
    "Mimir and Cortex: /api/v1/push, Thanos Receive: /api/v1/receive)",
    407: "a proxy between Shipboard and the store wants credentials",
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _millis(timestamp: datetime) -> int:
    # Integer arithmetic: a float's .timestamp() * 1000 can land a millisecond short.
    aware = timestamp if timestamp.tzinfo else timestamp.replace(tzinfo=UTC)
    return (aware - _EPOCH) // timedelta(milliseconds=1)
