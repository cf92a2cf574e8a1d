"""The database's per-bucket reduction gives the answer of the exact reduction over the points."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine

from shipboard.db.engine import system_transaction, transaction
from shipboard.monitoring import repository, service
from shipboard.monitoring.series import bucket

SINCE = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)  # off the second, on purpose
UNTIL = SINCE + timedelta(hours=2)


def _store(engine: Engine, rows: list[tuple[str, str, datetime, float]]) -> None:
    with system_transaction(engine) as session:
        repository.add_many(
            session,
            [
                {
                    "name": name,
                    "environment": env,
                    "timestamp": at,
                    "value": value,
                    "tags": {"host": "a"},
                    "source": "application",
                }
                for name, env, at, value in rows
            ],
        )


def test_database_buckets_equal_the_exact_reduction_of_the_points(engine: Engine) -> None:
    rng = random.Random(7)
    rows = []
    for _ in range(3000):
        at = SINCE + timedelta(microseconds=rng.randrange(int(7200 * 1e6)))
        rows.append(("latency", rng.choice(["staging", "production"]), at, rng.uniform(-5, 500)))
    # Edges: exactly on bucket boundaries, a microsecond either side, the range's own ends.
    for k in (0, 1, 59, 60, 119):
        edge = SINCE + timedelta(seconds=60 * k)
        for delta in (-1, 0, 1):
            at = edge + timedelta(microseconds=delta)
            if SINCE <= at < UNTIL:
                rows.append(("latency", "staging", at, float(k * 10 + delta)))
    rows.append(("latency", "staging", UNTIL, 1e6))  # outside: [since, until)
    rows.append(("other", "staging", SINCE, 1e6))  # another metric
    _store(engine, rows)

    with transaction(engine, write=False) as session:
        for environment in ("staging", None):
            raw = repository.points(
                session,
                environment=environment,
                name="latency",
                tags={},
                since=SINCE,
                until=UNTIL,
            )
            for step in (1, 60, 61, 3600):
                for agg in sorted(service.DATABASE_AGGREGATES):
                    got = service.series(
                        session,
                        name="latency",
                        environment=environment,
                        since=SINCE,
                        until=UNTIL,
                        step_s=step,
                        agg=agg,
                        tags={},
                    ).points
                    want = bucket(raw, since=SINCE, until=UNTIL, step_s=step, agg=agg)
                    assert [t for t, _ in got] == [t for t, _ in want], (environment, step, agg)
                    assert [v for _, v in got] == pytest.approx([v for _, v in want], rel=1e-12), (
                        environment,
                        step,
                        agg,
                    )


def test_a_sum_too_large_for_a_float_falls_back_to_the_exact_reduction(engine: Engine) -> None:
    huge = 1.7976931348623157e308
    _store(
        engine,
        [
            ("huge", "staging", SINCE + timedelta(seconds=i), v)
            for i, v in enumerate((huge, huge, -huge))
        ],
    )
    with transaction(engine, write=False) as session:
        points = service.series(
            session,
            name="huge",
            environment="staging",
            since=SINCE,
            until=UNTIL,
            step_s=3600,
            agg="avg",
            tags={},
        ).points
    assert points == [(SINCE, pytest.approx(huge / 3))]
