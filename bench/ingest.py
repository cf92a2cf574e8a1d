"""Ingest figures: metric points through the service, over HTTP and OTLP, and the server's memory
while it ingests."""

from __future__ import annotations

import json
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.support import (
    best_rate,
    live_instance,
    load_tool,
    metric_points,
    rss,
    server_process,
)
from shipboard.db import migrate
from shipboard.db.engine import create_db_engine, system_transaction, transaction
from shipboard.environments.service import seed_environments
from shipboard.monitoring.schemas import POINTS
from shipboard.monitoring.service import ingest_metrics


def bench_ingest(url: str, backend: str, n: int, repeats: int) -> list[dict[str, Any]]:
    migrate.upgrade(url)
    engine = create_db_engine(url)
    with system_transaction(engine) as s:
        seed_environments(s)
    points = metric_points(n)

    def through_service() -> None:
        metrics = POINTS.validate_python(points)
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

    baseline = best_rate(driver_baseline, n, repeats)
    value = best_rate(through_service, n, repeats)
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


def _otlp_body(n: int) -> bytes:
    from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
        ExportMetricsServiceRequest,
    )

    request = ExportMetricsServiceRequest()
    resource = request.resource_metrics.add()
    env = resource.resource.attributes.add()
    env.key, env.value.string_value = "deployment.environment.name", "production"
    metric = resource.scope_metrics.add().metrics.add()
    metric.name = "http_request_duration_ms"
    t0 = int((datetime.now(UTC) - timedelta(minutes=5)).timestamp() * 1e9)
    for i in range(n):
        point = metric.gauge.data_points.add()
        point.time_unix_nano = t0 + i * 1_000_000
        point.as_double = float(i % 997)
        attr = point.attributes.add()
        attr.key, attr.value.string_value = "route", f"/r/{i % 20}"
    return request.SerializeToString()


def bench_http_ingest(
    url: str, backend: str, n: int, requests_per_client: int, *, otlp: bool = False
) -> list[dict[str, Any]]:
    """10,000-point batches from 4 concurrent clients to POST /api/v1/metrics (JSON) or
    POST /v1/metrics (OTLP protobuf), server with default settings (auth, validation on)."""

    if otlp:
        body, content_type, path = _otlp_body(n), "application/x-protobuf", "/v1/metrics"
    else:
        body = json.dumps({"metrics": metric_points(n)}).encode()
        content_type, path = "application/json", "/api/v1/metrics"
    with (
        live_instance(url, "service") as (_app, _engine, token, base_url),
        tempfile.NamedTemporaryFile(suffix=".body") as body_file,
    ):
        body_file.write(body)
        body_file.flush()
        # The clients run in another process: in the server's own, their work would take
        # the server's GIL and the figure would measure the bench, not Shipboard.
        out = load_tool(
            f"{base_url}{path}",
            token,
            [
                "--concurrency",
                "4",
                "--post",
                body_file.name,
                "--requests",
                str(requests_per_client),
            ],
            ["--content-type", content_type],
        )
        if out["errors"]:
            raise RuntimeError(
                f"{out['errors']} ingest requests failed (statuses: {out['statuses']})"
            )
        rate = out["requests"] * n / out["seconds"]
    baseline = bench_ingest(url, backend, n, 3)[0]["baseline"]
    target = 0.4 if otlp else 0.8 if backend == "postgres" else 0.6
    return [
        {
            "name": "OTLP ingest via POST /v1/metrics"
            if otlp
            else "metric ingest via POST /api/v1/metrics",
            "backend": backend,
            "value": round(rate),
            "unit": "points/s",
            "baseline": baseline,
            "ratio": round(rate / baseline, 3),
            "target": target,
        }
    ]


def bench_memory(url: str, backend: str, points: int) -> list[dict[str, Any]]:
    """Server RSS after ingesting ``points`` points (10,000-point batches, 4 clients in another
    process) against its RSS just after start."""
    with (
        server_process(url) as (pid, token, base_url),
        tempfile.NamedTemporaryFile(suffix=".body") as body_file,
    ):
        body_file.write(json.dumps({"metrics": metric_points(10_000)}).encode())
        body_file.flush()
        # Warm the routes once so the start figure includes what any server has loaded.
        load_tool(
            f"{base_url}/api/v1/metrics",
            token,
            ["--concurrency", "1", "--post", body_file.name, "--requests", "1"],
        )
        start = rss(pid)
        per_client = max(1, points // 10_000 // 4)
        # 503s (SQLite busy past its timeout behind a checkpoint) are retried as a client
        # would: this figure is about memory, and a retried batch is stored once.
        out = load_tool(
            f"{base_url}/api/v1/metrics",
            token,
            ["--concurrency", "4", "--post", body_file.name, "--requests", str(per_client)],
            ["--retry-busy"],
        )
        end = rss(pid)
    growth = (end - start) / 2**20
    return [
        {
            "name": f"server RSS growth after {4 * per_client * 10_000:,} points",
            "backend": backend,
            "value": round(end / 2**20, 1),
            "unit": "MiB",
            "baseline": round(start / 2**20, 1),
            "ratio": round(end / start, 2),
            "target": "growth <= 200 MB",
            "growth_mib": round(growth, 1),
            "statuses": out["statuses"],
            "failed": out["errors"],
        }
    ]
