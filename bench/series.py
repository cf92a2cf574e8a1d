"""Series figure: the metric series query over a small and a large history."""

from __future__ import annotations

import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bench.support import (
    driver_load,
)
from shipboard.db import migrate
from shipboard.db.engine import create_db_engine, system_transaction, transaction
from shipboard.environments.service import seed_environments


def bench_series_query(
    url: str, backend: str, small: int, large: int, names: int = 100
) -> list[dict[str, Any]]:
    """24 h at 1-minute buckets, avg, one metric and environment: with ``small`` rows in
    monitoring_metrics, then with ``large`` (``names`` names x 3 environments, one point a
    minute, history growing backwards). Both sizes must hold more than 24 h per series, so the
    query reads the same 1,440 points and only the history around it grows."""
    from shipboard.monitoring.service import series

    migrate.upgrade(url)
    engine = create_db_engine(url)
    with system_transaction(engine) as s:
        seed_environments(s)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    columns = "id, name, value, timestamp, environment, tags, source"

    def fill(start: int, stop: int) -> None:
        # Point k of every (name, environment) is k minutes before now: history grows backwards.
        per_series_from, per_series_to = start // (3 * names), stop // (3 * names)
        batch: list[tuple[Any, ...]] = []
        for k in range(per_series_from, per_series_to):
            moment = (now - timedelta(minutes=k)).isoformat()
            for name in range(names):
                for env in ("development", "staging", "production"):
                    batch.append(
                        (
                            str(uuid.uuid4()),
                            f"metric_{name}",
                            float(k % 100),
                            moment,
                            env,
                            "{}",
                            "app",
                        )
                    )
            if len(batch) >= 300_000:
                driver_load(engine, backend, "monitoring_metrics", columns, batch)
                batch = []
        if batch:
            driver_load(engine, backend, "monitoring_metrics", columns, batch)

    def query_ms() -> float:
        if backend == "postgres":
            with engine.connect() as conn:
                conn.execute(sa.text("ANALYZE monitoring_metrics"))
                conn.commit()
        timings = []
        for _ in range(20):
            started = time.perf_counter()
            with transaction(engine, write=False) as s:
                series(
                    s,
                    name=f"metric_{names // 2}",
                    environment="production",
                    since=now - timedelta(hours=24),
                    until=now,
                    step_s=60,
                    agg="avg",
                    tags={},
                )
            timings.append((time.perf_counter() - started) * 1000)
        return statistics.median(timings)

    fill(0, small)
    small_ms = query_ms()
    fill(small, large)
    large_ms = query_ms()
    engine.dispose()
    return [
        {
            "name": f"series 24h/1min avg ({large:,} vs {small:,} rows)",
            "backend": backend,
            "value": round(large_ms, 1),
            "unit": "ms (median)",
            "baseline": round(small_ms, 1),
            "ratio": round(large_ms / small_ms, 2),
            "target": "<= 1.5x, and <= 50 ms on PostgreSQL",
        }
    ]
