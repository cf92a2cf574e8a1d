"""Monitoring metrics: batch ingest (idempotent), listing, series and names."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from shipboard.core.errors import Conflict, InvalidInput, PayloadTooLarge
from shipboard.core.pagination import clamp_limit
from shipboard.core.promql import PromStore
from shipboard.core.time import utcnow
from shipboard.db import bulk
from shipboard.environments.service import require_known_environments
from shipboard.monitoring import forwarding as forwarding_
from shipboard.monitoring import otlp, repository, store_series, temporality
from shipboard.monitoring.schemas import (
    POINTS,
    Accepted,
    MetricBatch,
    MetricNameInfo,
    MetricNames,
    MonitoringMetricCreate,
    MonitoringMetricFilter,
    MonitoringMetricPage,
    MonitoringMetricRead,
    Series,
)
from shipboard.monitoring.series import bucket, default_step

MAX_BATCH = 10_000
MAX_FUTURE = timedelta(minutes=10)


def ingest_metrics(
    session: Session,
    *,
    metrics: list[MonitoringMetricCreate],
    forwarding: forwarding_.Forwarding | None = None,
) -> int:
    """Store a batch of points in one statement (and queue it for the user's store when
    forwarding is on); an unknown environment rejects the batch."""
    require_known_environments(session, field="metrics", names=[m["environment"] for m in metrics])
    now = utcnow()
    late = now + MAX_FUTURE
    future = [
        {"loc": ["body", "metrics", i, "timestamp"], "msg": "more than 10 minutes in the future"}
        for i, m in enumerate(metrics)
        if (at := m.get("timestamp")) is not None and at > late
    ]
    if future:
        raise InvalidInput("batch has timestamps in the future", errors=future)
    # Straight to the insert's tuples: a dict per point first was a tenth of a large batch.
    rows = [
        (
            point_id,
            m["name"],
            m["value"],
            m.get("timestamp") or now,
            m["environment"],
            m.get("tags") or {},
            m["source"],
        )
        for point_id, m in zip(bulk.uuid7_strings(len(metrics)), metrics, strict=True)
    ]
    stored = repository.insert_points(session, rows)
    forwarding_.enqueue(session, forwarding=forwarding, rows=rows)
    return stored


def store_rows(
    session: Session, *, rows: list[dict[str, Any]], forwarding: forwarding_.Forwarding | None
) -> int:
    """Store converted points (OTLP, scrape) and queue them for the user's store."""
    tuples = repository.point_tuples(rows)
    stored = repository.insert_points(session, tuples)
    forwarding_.enqueue(session, forwarding=forwarding, rows=tuples)
    return stored


def list_metrics(
    session: Session,
    *,
    filters: MonitoringMetricFilter,
    cursor: str | None = None,
    limit: int | None = None,
) -> MonitoringMetricPage:
    """Points newest first, filtered on name, environment, source and time."""
    page = repository.page(session, filters=filters, cursor=cursor, limit=clamp_limit(limit))
    return MonitoringMetricPage(
        items=[MonitoringMetricRead.model_validate(m) for m in page.items],
        next_cursor=page.next_cursor,
    )


def ingest_batch(
    session: Session,
    *,
    batch: MetricBatch,
    scope: str,
    idempotency_key: str | None,
    forwarding: forwarding_.Forwarding | None = None,
) -> Accepted:
    """Store a batch once: a retry under the same ``Idempotency-Key`` gets the first answer."""
    points = batch["metrics"]
    if len(points) > MAX_BATCH:
        raise PayloadTooLarge(f"at most {MAX_BATCH} points a request; this one has {len(points)}")
    if idempotency_key is None:
        return Accepted(accepted=ingest_metrics(session, metrics=points, forwarding=forwarding))
    # Defaults filled in, so leaving out "tags": {} is the same batch as sending it.
    normal = [{"timestamp": None, "tags": {}, **p} for p in POINTS.dump_python(points, mode="json")]
    digest = hashlib.sha256(json.dumps({"metrics": normal}, sort_keys=True).encode()).hexdigest()
    seen = repository.idempotency_get(session, scope, idempotency_key)
    if seen is not None:
        if seen.request_hash != digest:
            raise Conflict("this Idempotency-Key was used for a different batch")
        return Accepted.model_validate(seen.response)
    accepted = Accepted(accepted=ingest_metrics(session, metrics=points, forwarding=forwarding))
    try:
        repository.idempotency_put(
            session,
            scope=scope,
            key=idempotency_key,
            request_hash=digest,
            response=accepted.model_dump(),
        )
    except IntegrityError as exc:
        # The same key is being stored by a concurrent request; this one rolls back whole.
        raise Conflict("a batch with this Idempotency-Key is being stored; retry") from exc
    return accepted


def series(
    session: Session | None,
    *,
    name: str,
    environment: str | None,
    since: datetime | None,
    until: datetime | None,
    step_s: int | None,
    agg: str,
    tags: dict[str, str],
    store: PromStore | None = None,
) -> Series:
    """Points of one metric bucketed by ``step_s`` and aggregated, filtered by tags: from the
    database, or from the user's metrics store when ``store`` is given (``store_series.py``;
    ``session`` may then be None)."""
    until = until or utcnow()
    since = since or until - timedelta(hours=1)
    if since >= until:
        raise InvalidInput(
            "since must be before until",
            errors=[{"loc": ["query", "since"], "msg": "not before until"}],
        )
    step = step_s or default_step(since, until)
    if (until - since).total_seconds() / step > 11_000:
        raise InvalidInput(
            "step too small for the range: at most 11,000 buckets",
            errors=[{"loc": ["query", "step"], "msg": "too small for the range"}],
        )
    if store is not None:
        points = store_series.read(
            store,
            name=name,
            environment=environment,
            tags=tags,
            since=since,
            until=until,
            step_s=step,
            agg=agg,
        )
    else:
        if session is None:
            raise ValueError("reading series from the database needs a session")
        points = _database_points(session, name, environment, tags, since, until, step, agg)
    return Series(
        name=name,
        environment=environment,
        agg=agg,
        step_s=step,
        since=since,
        until=until,
        tags=tags,
        points=points,
        source="embedded" if store is None else "store",
    )


def _database_points(
    session: Session,
    name: str,
    environment: str | None,
    tags: dict[str, str],
    since: datetime,
    until: datetime,
    step: int,
    agg: str,
) -> list[tuple[datetime, float]]:
    if not tags and agg in DATABASE_AGGREGATES:
        reduced = _database_series(session, name, environment, since, until, step, agg)
        if reduced is not None:
            return reduced
    chosen = repository.points(
        session, environment=environment, name=name, tags=tags, since=since, until=until
    )
    return bucket(chosen, since=since, until=until, step_s=step, agg=agg)


def pick_store(configured: PromStore | None, source: str | None) -> PromStore | None:
    """The store a series request reads: the metrics store when one is configured, unless the
    request asks for ``source=embedded``; ``source=store`` without one is a 422."""
    if source == "embedded":
        return None
    if source == "store" and configured is None:
        raise InvalidInput(
            "source=store needs SHIPBOARD_PROMETHEUS_URL; this instance reads series from its "
            "own database only",
            errors=[{"loc": ["query", "source"], "msg": "no metrics store is configured"}],
        )
    return configured


# Reduced by the database, one row a bucket. Percentiles and tag filters read the points: a
# percentile needs them all, and tags are compared in Python the same way on both backends.
DATABASE_AGGREGATES = frozenset({"avg", "min", "max", "sum", "count"})


def _database_series(
    session: Session,
    name: str,
    environment: str | None,
    since: datetime,
    until: datetime,
    step: int,
    agg: str,
) -> list[tuple[datetime, float]] | None:
    """The series from per-bucket (count, sum, min, max); None when a sum overflowed a float,
    where the exact reduction in Python (``series.AGGREGATIONS``) must decide instead."""
    rows = repository.buckets(
        session, environment=environment, name=name, since=since, until=until, step_s=step
    )
    pick: dict[str, Callable[[int, float, float, float], float]] = {
        "avg": lambda n, total, _lo, _hi: total / n,
        "sum": lambda _n, total, _lo, _hi: total,
        "min": lambda _n, _total, low, _hi: low,
        "max": lambda _n, _total, _lo, high: high,
        "count": lambda n, _total, _lo, _hi: float(n),
    }
    reduce = pick[agg]
    points = []
    for index, n, total, low, high in rows:
        if not math.isfinite(total):
            return None
        points.append((since + timedelta(seconds=index * step), reduce(n, total, low, high)))
    return points


def names_to_chart(
    session: Session | None,
    *,
    environment: str,
    store: PromStore | None,
    since: datetime,
    until: datetime,
) -> list[tuple[str, int | None]]:
    """Metric names to chart, with their point counts where the database knows them: from the
    metrics store when the page reads it (``session`` may then be None), else from the
    database."""
    if store is not None:
        found = store_series.names(store, environment=environment, since=since, until=until)
        return [(name, None) for name in found]
    if session is None:
        raise ValueError("reading metric names from the database needs a session")
    return [(n.name, n.points) for n in metric_names(session, environment=environment).items]


# A store's names without a window: the last day (VictoriaMetrics' own default; Prometheus would
# search every block it keeps), the monitoring page's default range.
STORE_NAMES_WINDOW = timedelta(hours=24)


def metric_names(
    session: Session | None,
    *,
    environment: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
    store: PromStore | None = None,
) -> MetricNames:
    """Every metric name with its sources, the tag keys seen recently, and its point count,
    from the points between ``since`` and ``until`` (each open when None). From the metrics
    store when ``store`` is given (``session`` may then be None): its names only, in the last
    ``STORE_NAMES_WINDOW`` by default."""
    if store is not None:
        return _store_names(store, environment, since, until)
    if session is None:
        raise ValueError("reading metric names from the database needs a session")
    _check_window(since, until)
    grouped: dict[str, tuple[set[str], int]] = {}
    for name, source, count in repository.names(
        session, environment=environment, since=since, until=until
    ):
        sources, total = grouped.get(name, (set(), 0))
        sources.add(source)
        grouped[name] = (sources, total + count)
    items = []
    for name in sorted(grouped):
        sources, total = grouped[name]
        recent = repository.recent_tags(
            session, environment=environment, name=name, since=since, until=until
        )
        items.append(
            MetricNameInfo(
                name=name,
                sources=sorted(sources),
                tag_keys=sorted({k for tags in recent for k in tags}),
                points=total,
            )
        )
    return MetricNames(items=items, since=since, until=until)


def _store_names(
    store: PromStore, environment: str | None, since: datetime | None, until: datetime | None
) -> MetricNames:
    until = until or utcnow()
    since = since or until - STORE_NAMES_WINDOW
    _check_window(since, until)
    found = store_series.names(store, environment=environment, since=since, until=until)
    return MetricNames(
        items=[MetricNameInfo(name=name) for name in found],
        source="store",
        since=since,
        until=until,
    )


def _check_window(since: datetime | None, until: datetime | None) -> None:
    if since is not None and until is not None and since >= until:
        raise InvalidInput(
            "since must be before until (now, when until is not given)",
            errors=[{"loc": ["query", "since"], "msg": "not before until"}],
        )


def settle_cumulative(session: Session, *, converted: otlp.Converted) -> None:
    """Turn the cumulative points of an OTLP export into the increments stored for them, and
    remember each series' newest point for the next export (``temporality.py`` has the rules)."""
    if not converted.pending:
        return
    states = repository.cumulative_states(session, sorted({p.key for p in converted.pending}))
    changed: dict[str, repository.CumulativeState] = {}
    for point in sorted(converted.pending, key=lambda p: (p.key, p.start_ns, p.time_ns)):
        previous = states.get(point.key)
        if not temporality.advances(point.start_ns, point.time_ns, previous):
            continue  # a retried or late export: what it adds is stored already
        increment = temporality.increment(
            point.kind, point.reading, point.start_ns, point.time_ns, previous
        )
        if increment is not None:
            converted.rows.extend(point.rows(increment))
        states[point.key] = changed[point.key] = (point.start_ns, point.time_ns, point.reading)
    repository.save_cumulative_states(session, changed)
