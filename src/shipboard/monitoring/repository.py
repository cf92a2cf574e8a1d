from __future__ import annotations

import calendar
import math
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from shipboard.core.pagination import Page
from shipboard.core.time import utcnow
from shipboard.db import bulk
from shipboard.db.keyset import filter_by, keyset_page
from shipboard.db.types import UTCDateTime, format_utc
from shipboard.monitoring.models import (
    IdempotencyKey,
    MonitoringMetric,
    OtlpCumulativeState,
    RemoteWriteBatch,
)
from shipboard.monitoring.schemas import MonitoringMetricFilter

POINT_COLUMNS = (
    bulk.Column("id", "uuid"),
    bulk.Column("name", "text"),
    bulk.Column("value", "float"),
    bulk.Column("timestamp", "timestamp"),
    bulk.Column("environment", "text"),
    bulk.Column("tags", "json"),
    bulk.Column("source", "text"),
)


def insert_points(session: Session, rows: list[tuple[Any, ...]]) -> int:
    """Insert points, each a tuple in ``POINT_COLUMNS`` order, in one statement."""
    return bulk.insert(session, "monitoring_metrics", POINT_COLUMNS, rows)


def add_many(session: Session, rows: list[dict[str, Any]]) -> int:
    """Insert points in one statement; rows without an ``id`` get a new time-ordered one."""
    return insert_points(session, point_tuples(rows))


def point_tuples(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Point dicts as tuples in ``POINT_COLUMNS`` order; rows without an ``id`` get a new
    time-ordered one."""
    return [
        (
            r.get("id") or new_id,
            r["name"],
            r["value"],
            r["timestamp"],
            r["environment"],
            r["tags"] or {},
            r["source"],
        )
        for r, new_id in zip(rows, bulk.uuid7_strings(len(rows)), strict=True)
    ]


def page(
    session: Session, *, filters: MonitoringMetricFilter, cursor: str | None, limit: int
) -> Page[MonitoringMetric]:
    stmt = filter_by(
        sa.select(MonitoringMetric),
        MonitoringMetric,
        filters,
        equal=("name", "environment", "source"),
        time_column="timestamp",
    )
    return keyset_page(
        session,
        stmt,
        sort_col=MonitoringMetric.timestamp,
        id_col=MonitoringMetric.id,
        cursor=cursor,
        limit=limit,
    )


def values(
    session: Session,
    *,
    environment: str,
    name: str,
    tags: dict[str, str],
    since: datetime,
    until: datetime,
) -> list[float]:
    """Values of one metric in [since, until), keeping points whose tags include ``tags``."""
    found = points(session, environment=environment, name=name, tags=tags, since=since, until=until)
    return [value for _, value in found]


def idempotency_get(session: Session, scope: str, key: str) -> IdempotencyKey | None:
    return session.get(IdempotencyKey, (scope, key))


def idempotency_put(
    session: Session, *, scope: str, key: str, request_hash: str, response: dict[str, Any]
) -> None:
    session.add(IdempotencyKey(scope=scope, key=key, request_hash=request_hash, response=response))
    session.flush()


def points(
    session: Session,
    *,
    environment: str | None,
    name: str,
    tags: dict[str, str],
    since: datetime,
    until: datetime,
) -> list[tuple[datetime, float]]:
    """(time, value) of one metric in [since, until), keeping points whose tags include ``tags``
    (tags are compared here, in Python, the same way on both backends)."""
    where = [
        MonitoringMetric.name == name,
        MonitoringMetric.timestamp >= since,
        MonitoringMetric.timestamp < until,
    ]
    if environment is not None:
        where.append(MonitoringMetric.environment == environment)
    if not tags:
        # Without a tag filter the tags are not read: decoding their JSON was most of the time
        # of a series over many points, and (name, environment, timestamp, value) is then an
        # index-only scan.
        plain = sa.select(MonitoringMetric.timestamp, MonitoringMetric.value).where(*where)
        return [(t, float(v)) for t, v in session.execute(plain).all() if t is not None]
    stmt = sa.select(
        MonitoringMetric.timestamp, MonitoringMetric.value, MonitoringMetric.tags
    ).where(*where)
    return [
        (t, float(v))
        for t, v, point_tags in session.execute(stmt).all()
        if t is not None and all((point_tags or {}).get(k) == val for k, val in tags.items())
    ]


def buckets(
    session: Session,
    *,
    environment: str | None,
    name: str,
    since: datetime,
    until: datetime,
    step_s: int,
) -> list[tuple[int, int, float, float, float]]:
    """(bucket index, count, sum, min, max) of one metric's points in each non-empty bucket
    [since + k·step, since + (k+1)·step), computed by the database: one row per bucket
    instead of one per point, so a series costs the same whatever the points' density.

    The index is the same floor of the exact time difference that ``series.bucket`` takes:
    microseconds as integers on SQLite (timestamps are stored as ISO text in UTC with 6 digits:
    ``types.format_utc``, ``types.SQLITE_NOW``),
    ``extract(epoch from interval)`` (exact numeric) on PostgreSQL."""
    ts = MonitoringMetric.timestamp
    is_postgres = session.get_bind().dialect.name == "postgresql"
    utc = since.astimezone(UTC)
    since_us = calendar.timegm(utc.timetuple()) * 1_000_000 + utc.microsecond
    if not is_postgres and environment is not None and since_us >= 0:
        return _sqlite_buckets(session, environment, name, since, until, since_us, step_s)
    if is_postgres:
        offset = sa.extract("epoch", ts - sa.literal(since, UTCDateTime()))
        index: Any = sa.cast(sa.func.floor(offset / step_s), sa.BigInteger)
        value: Any = MonitoringMetric.value
    else:
        # Whole seconds from the text without its fraction: SQLite's date functions keep
        # milliseconds and round, so 12:13:39.9996 would count as 12:13:40.
        micros = (
            sa.cast(sa.func.strftime("%s", sa.func.substr(ts, 1, 19)), sa.BigInteger) * 1_000_000
            + sa.cast(sa.func.substr(ts, 21, 6), sa.BigInteger)
            - since_us
        )
        index = sa.cast(micros, sa.BigInteger) // (step_s * 1_000_000)
        value = MonitoringMetric.value
    label = index.label("bucket")
    stmt = (
        sa.select(
            label, sa.func.count(), sa.func.sum(value), sa.func.min(value), sa.func.max(value)
        )
        .where(MonitoringMetric.name == name, ts >= since, ts < until)
        .group_by(label)
        .order_by(label)
    )
    if environment is not None:
        stmt = stmt.where(MonitoringMetric.environment == environment)
    return [
        (int(i), int(n), float(total), float(low), float(high))
        for i, n, total, low, high in session.execute(stmt).all()
    ]


# The bounds of bucket i as stored timestamps are written (ISO text, UTC, 6 digits), so the
# points of a bucket are one range of (name, environment, timestamp, value): the database
# aggregates the index entries without parsing a single timestamp. Parsing each point's time
# cost ~0.7 µs a point, which made a series' cost grow with the points in its range.
_SQLITE_BUCKETS = sa.text(
    """
    WITH RECURSIVE k(i) AS (
        SELECT 0 UNION ALL SELECT i + 1 FROM k WHERE i + 1 < :n
    ),
    b(i, start, stop) AS (
        SELECT i,
               strftime('%Y-%m-%dT%H:%M:%S', (:since_us + i * :step_us) / 1000000, 'unixepoch')
                 || printf('.%06d+00:00', (:since_us + i * :step_us) % 1000000),
               min(:until,
                   strftime('%Y-%m-%dT%H:%M:%S', (:since_us + (i + 1) * :step_us) / 1000000,
                            'unixepoch')
                     || printf('.%06d+00:00', (:since_us + (i + 1) * :step_us) % 1000000))
        FROM k
    )
    SELECT b.i, count(m.value), sum(m.value), min(m.value), max(m.value)
    FROM b CROSS JOIN monitoring_metrics AS m INDEXED BY ix_monitoring_metrics_series
    WHERE m.name = :name AND m.environment = :environment
      AND m.timestamp >= b.start AND m.timestamp < b.stop
    GROUP BY b.i
    ORDER BY b.i
    """
)


def _sqlite_buckets(
    session: Session,
    environment: str,
    name: str,
    since: datetime,
    until: datetime,
    since_us: int,
    step_s: int,
) -> list[tuple[int, int, float, float, float]]:
    n = math.ceil((until - since).total_seconds() / step_s)
    rows = session.execute(
        _SQLITE_BUCKETS,
        {
            "n": n,
            "since_us": since_us,
            "step_us": step_s * 1_000_000,
            "name": name,
            "environment": environment,
            "until": format_utc(until),
        },
    ).all()
    return [
        (int(i), int(count), float(total), float(low), float(high))
        for i, count, total, low, high in rows
    ]


def names(
    session: Session,
    *,
    environment: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[tuple[str, str, int]]:
    """(name, source, points) of the points in ``environment`` in ``[since, until)``."""
    stmt = sa.select(MonitoringMetric.name, MonitoringMetric.source, sa.func.count()).group_by(
        MonitoringMetric.name, MonitoringMetric.source
    )
    stmt = stmt.where(*_window(environment, since, until))
    return [(n, s, int(c)) for n, s, c in session.execute(stmt).all()]


def recent_tags(
    session: Session,
    *,
    environment: str | None,
    name: str,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 200,
) -> list[dict[str, str]]:
    stmt = (
        sa.select(MonitoringMetric.tags)
        .where(MonitoringMetric.name == name, *_window(environment, since, until))
        .order_by(MonitoringMetric.timestamp.desc())
        .limit(limit)
    )
    return [t or {} for t in session.scalars(stmt)]


def _window(
    environment: str | None, since: datetime | None, until: datetime | None
) -> list[sa.ColumnElement[bool]]:
    where = []
    if environment is not None:
        where.append(MonitoringMetric.environment == environment)
    if since is not None:
        where.append(MonitoringMetric.timestamp >= since)
    if until is not None:
        where.append(MonitoringMetric.timestamp < until)
    return where


# (start_ns, time_ns, reading): the last cumulative point of a series.
CumulativeState = tuple[int, int, dict[str, Any]]
_KEYS_PER_QUERY = 500


def cumulative_states(session: Session, keys: list[str]) -> dict[str, CumulativeState]:
    """The stored last points of these series, locked on PostgreSQL until the transaction ends
    (so an export of the same series on another node waits instead of subtracting the same
    previous point twice; SQLite's write lock, taken when the request began, does the same)."""
    found: dict[str, CumulativeState] = {}
    table = OtlpCumulativeState
    for i in range(0, len(keys), _KEYS_PER_QUERY):
        stmt = sa.select(table.key, table.start_ns, table.time_ns, table.reading).where(
            table.key.in_(keys[i : i + _KEYS_PER_QUERY])
        )
        if session.get_bind().dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        for key, start_ns, time_ns, reading in session.execute(stmt).all():
            found[key] = (int(start_ns), int(time_ns), reading)
    return found


def save_cumulative_states(session: Session, states: dict[str, CumulativeState]) -> None:
    """Insert or replace the last points of these series."""
    if not states:
        return
    now = utcnow()
    rows = [
        {
            "key": key,
            "start_ns": str(start),
            "time_ns": str(at),
            "reading": reading,
            "updated_at": now,
        }
        for key, (start, at, reading) in states.items()
    ]
    dialect = session.get_bind().dialect.name
    insert: Any = postgresql_insert if dialect == "postgresql" else sqlite_insert
    for i in range(0, len(rows), _KEYS_PER_QUERY):
        stmt = insert(OtlpCumulativeState).values(rows[i : i + _KEYS_PER_QUERY])
        stmt = stmt.on_conflict_do_update(
            index_elements=[OtlpCumulativeState.key],
            set_={
                "start_ns": stmt.excluded.start_ns,
                "time_ns": stmt.excluded.time_ns,
                "reading": stmt.excluded.reading,
                "updated_at": stmt.excluded.updated_at,
            },
        )
        session.execute(stmt)


# --- the remote-write queue (monitoring/forwarding.py) ---------------------------------------


def remote_enqueue(
    session: Session, *, id: uuid.UUID, payload: bytes, points: int, now: datetime
) -> None:
    session.execute(
        sa.insert(RemoteWriteBatch).values(
            id=id,
            payload=payload,
            points=points,
            size=len(payload),
            enqueued_at=now,
            attempts=0,
            next_attempt_at=now,
        )
    )


def remote_queue_size(session: Session) -> int:
    total = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(RemoteWriteBatch.size), 0)).where(
            RemoteWriteBatch.dropped_at.is_(None)
        )
    )
    return int(total or 0)


def remote_queue_stats(session: Session) -> tuple[int, int, int, datetime | None]:
    """Batches, points and bytes waiting, and when the oldest was queued."""
    row = session.execute(
        sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(RemoteWriteBatch.points), 0),
            sa.func.coalesce(sa.func.sum(RemoteWriteBatch.size), 0),
            sa.func.min(RemoteWriteBatch.enqueued_at),
        ).where(RemoteWriteBatch.dropped_at.is_(None))
    ).one()
    oldest = row[3]
    if isinstance(oldest, str):  # SQLite's aggregate loses the column type
        oldest = datetime.fromisoformat(oldest)
    if oldest is not None and oldest.tzinfo is None:
        oldest = oldest.replace(tzinfo=UTC)
    return int(row[0]), int(row[1]), int(row[2]), oldest


def remote_head_error(session: Session) -> str | None:
    """Why the oldest waiting batch last failed (None: it has not, or none waits)."""
    return session.scalar(
        sa.select(RemoteWriteBatch.last_error)
        .where(RemoteWriteBatch.dropped_at.is_(None))
        .order_by(RemoteWriteBatch.id)
        .limit(1)
    )


def remote_due(
    session: Session, *, now: datetime, limit: int
) -> list[tuple[uuid.UUID, bytes, int, int]]:
    """The oldest batches, in queue order, up to the first one still waiting out a backoff:
    a later batch never overtakes an earlier one."""
    rows = session.execute(
        sa.select(
            RemoteWriteBatch.id,
            RemoteWriteBatch.payload,
            RemoteWriteBatch.points,
            RemoteWriteBatch.attempts,
            RemoteWriteBatch.next_attempt_at,
        )
        .where(RemoteWriteBatch.dropped_at.is_(None))
        .order_by(RemoteWriteBatch.id)
        .limit(limit)
    ).all()
    due = []
    for batch_id, payload, points, attempts, next_at in rows:
        if next_at > now:
            break
        due.append((batch_id, bytes(payload), int(points), int(attempts)))
    return due


def remote_delete(session: Session, batch_id: uuid.UUID) -> None:
    session.execute(sa.delete(RemoteWriteBatch).where(RemoteWriteBatch.id == batch_id))


def remote_drop(
    session: Session, batch_id: uuid.UUID, *, now: datetime, error: str, points: int | None = None
) -> None:
    """Mark a batch refused for good (``points``: how many of its points were, when the store
    took the rest of them)."""
    values: dict[str, Any] = {
        "payload": b"",
        "size": 0,
        "dropped_at": now,
        "last_error": error[:1000],
    }
    if points is not None:
        values["points"] = points
    session.execute(
        sa.update(RemoteWriteBatch).where(RemoteWriteBatch.id == batch_id).values(**values)
    )


def remote_replace(session: Session, batch_id: uuid.UUID, *, payload: bytes, points: int) -> None:
    """What is left of a batch after the store took part of it."""
    session.execute(
        sa.update(RemoteWriteBatch)
        .where(RemoteWriteBatch.id == batch_id)
        .values(payload=payload, size=len(payload), points=points)
    )


def remote_dropped_since(session: Session, since: datetime) -> int:
    """Points the store refused for good since ``since``."""
    total = session.scalar(
        sa.select(sa.func.coalesce(sa.func.sum(RemoteWriteBatch.points), 0)).where(
            RemoteWriteBatch.dropped_at >= since
        )
    )
    return int(total or 0)


def remote_prune_dropped(session: Session, before: datetime) -> None:
    session.execute(sa.delete(RemoteWriteBatch).where(RemoteWriteBatch.dropped_at < before))


def remote_retry_head_now(session: Session, *, now: datetime) -> uuid.UUID | None:
    """Make the oldest waiting batch due now (its backoff forgotten); its id, if any."""
    head = session.scalar(
        sa.select(RemoteWriteBatch.id)
        .where(RemoteWriteBatch.dropped_at.is_(None))
        .order_by(RemoteWriteBatch.id)
        .limit(1)
    )
    if head is not None:
        session.execute(
            sa.update(RemoteWriteBatch)
            .where(RemoteWriteBatch.id == head)
            .values(next_attempt_at=now)
        )
    return head


def remote_retry_later(session: Session, batch_id: uuid.UUID, *, at: datetime, error: str) -> None:
    session.execute(
        sa.update(RemoteWriteBatch)
        .where(RemoteWriteBatch.id == batch_id)
        .values(attempts=RemoteWriteBatch.attempts + 1, next_attempt_at=at, last_error=error[:1000])
    )
