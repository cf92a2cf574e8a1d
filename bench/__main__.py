"""`make bench`: each figure beside a baseline measured in the same run, as a ratio.

The machine is small and shared, so absolute numbers drift; the ratio to a baseline taken
seconds apart on the same database is what to compare between runs.

Figures so far (the HTTP ingest figures come with the ingest routes):
- metric ingest through the service layer (pydantic validation + one bulk INSERT in a
  transaction), points/s, against the same rows written by the driver in one stream
  (``COPY`` on PostgreSQL, ``executemany`` in one transaction on SQLite).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from shipboard.db import migrate
from shipboard.db.engine import create_db_engine, system_transaction, transaction
from shipboard.environments.service import seed_environments
from shipboard.monitoring.schemas import MonitoringMetricCreate
from shipboard.monitoring.service import ingest_metrics

PG_URL = os.environ.get(
    "SHIPBOARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)


def _points(n: int) -> list[dict[str, Any]]:
    t0 = datetime.now(UTC) - timedelta(minutes=5)
    return [
        {
            "name": "http_request_duration_ms",
            "value": float(i % 997),
            "timestamp": (t0 + timedelta(milliseconds=i)).isoformat(),
            "environment": "production",
            "tags": {"route": f"/r/{i % 20}", "method": "GET"},
            "source": "application",
        }
        for i in range(n)
    ]


def _best_rate(fn: Callable[[], None], n: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - started))
    return statistics.median(rates)


def bench_ingest(url: str, backend: str, n: int, repeats: int) -> list[dict[str, Any]]:
    migrate.upgrade(url)
    engine = create_db_engine(url)
    with system_transaction(engine) as s:
        seed_environments(s)
    points = _points(n)

    def through_service() -> None:
        metrics = [MonitoringMetricCreate.model_validate(p) for p in points]
        with transaction(engine) as s:
            ingest_metrics(s, metrics=metrics)

    def driver_baseline() -> None:
        rows = [
            (
                str(uuid.uuid4()),
                p["name"],
                p["value"],
                p["timestamp"],
                p["environment"],
                json.dumps(p["tags"]),
                p["source"],
            )
            for p in points
        ]
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            if backend == "postgres":
                with cur.copy(  # type: ignore[attr-defined]
                    "COPY monitoring_metrics "
                    "(id, name, value, timestamp, environment, tags, source) FROM STDIN"
                ) as copy:
                    for row in rows:
                        copy.write_row(row)
            else:
                cur.execute("BEGIN")
                cur.executemany(
                    "INSERT INTO monitoring_metrics "
                    "(id, name, value, timestamp, environment, tags, source) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
            raw.commit()
        finally:
            raw.close()

    baseline = _best_rate(driver_baseline, n, repeats)
    value = _best_rate(through_service, n, repeats)
    engine.dispose()
    return [
        {
            "name": "metric ingest via service layer",
            "backend": backend,
            "value": round(value),
            "unit": "points/s",
            "baseline": round(baseline),
            "ratio": round(value / baseline, 3),
            "target": None,
        }
    ]


def _pg_database() -> tuple[str, Callable[[], None]] | None:
    try:
        admin = create_db_engine(PG_URL, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT")
        name = f"shipboard_bench_{uuid.uuid4().hex[:8]}"
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError:
        return None

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    url = sa.engine.make_url(create_db_engine(PG_URL).url).set(database=name)
    return url.render_as_string(hide_password=False), drop


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="fewer rows and repeats (< 2 min)")
    args = parser.parse_args()
    n, repeats = (2_000, 3) if args.quick else (10_000, 5)

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        print(f"sqlite: ingest of {n} points x {repeats}", file=sys.stderr)
        results += bench_ingest(f"sqlite:///{tmp}/bench.db", "sqlite", n, repeats)
    pg = _pg_database()
    if pg is None:
        print(f"postgres: skipped, no server at {PG_URL}", file=sys.stderr)
    else:
        url, drop = pg
        try:
            print(f"postgres: ingest of {n} points x {repeats}", file=sys.stderr)
            results += bench_ingest(url, "postgres", n, repeats)
        finally:
            drop()

    header = f"{'figure':36} {'backend':9} {'value':>12} {'baseline':>12} {'ratio':>7}  unit"
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['name']:36} {r['backend']:9} {r['value']:>12} {r['baseline']:>12} "
            f"{r['ratio']:>7.3f}  {r['unit']}"
        )
    Path(__file__).with_name("results.json").write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
