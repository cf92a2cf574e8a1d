"""`make bench`: each figure beside a baseline measured in the same run, as a ratio.

The machine is small and shared, so absolute numbers drift; the ratio to a baseline taken
seconds apart on the same database is what to compare between runs.

Figures (docs/benchmarks.md has the table of baselines and targets): metric ingest through
the service layer, through ``POST /api/v1/metrics`` and OTLP; deployment overhead; log
append; SARIF import twice.
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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.db import migrate
from shipboard.db.engine import create_db_engine, system_transaction, transaction
from shipboard.environments.service import seed_environments
from shipboard.monitoring.schemas import POINTS
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


@contextmanager
def _live_instance(url: str, role: str) -> Iterator[tuple[Any, Engine, str, str]]:
    """A migrated, seeded database and a real server on loopback with default settings:
    yields (app, engine, token of a user with ``role``, base URL)."""
    import socket
    import threading

    import uvicorn

    from shipboard.app import create_app
    from shipboard.audit.service import AuditContext
    from shipboard.auth.schemas import UserCreate
    from shipboard.auth.service import create_user
    from shipboard.config import Settings

    migrate.upgrade(url)
    engine = create_db_engine(url)
    with system_transaction(engine) as s:
        seed_environments(s)
        token = create_user(
            s,
            data=UserCreate(name=f"bench-{uuid.uuid4().hex[:6]}", role=role),  # type: ignore[arg-type]
            audit_context=AuditContext(actor="bench"),
        ).token
    with tempfile.TemporaryDirectory() as home:
        app = create_app(
            Settings(database_url=url, home=Path(home), log_level="warning"), engine=engine
        )
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.01)
        try:
            yield app, engine, token, f"http://127.0.0.1:{port}"
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            engine.dispose()


def bench_deployment_overhead(url: str, backend: str, runs: int) -> list[dict[str, Any]]:
    """POST /deployments -> success for a three-step pipeline of `true`, through a real server
    and the in-process worker with default settings, against the same three commands run with
    /bin/sh -c directly."""
    import subprocess

    import httpx

    from shipboard.pipelines.worker import Worker, start_in_thread

    durations = []
    with _live_instance(url, "admin") as (app, engine, token, base_url):
        worker = Worker(engine, app.state.keyring)
        app.state.wake_worker = worker.wake.set
        _, stop = start_in_thread(worker)
        client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"})
        steps = [
            {"name": f"s{i}", "stage": stage, "run": "true"}
            for i, stage in enumerate(("build", "deploy", "verify"))
        ]
        client.patch(
            "/api/v1/environments/development", json={"config": {"pipeline": {"steps": steps}}}
        )
        for i in range(runs):
            started = time.perf_counter()
            did = client.post(
                "/api/v1/deployments",
                json={"environment": "development", "version": f"1.0.{i}", "commit_sha": "abcdef1"},
            ).json()["id"]
            while client.get(f"/api/v1/deployments/{did}").json()["status"] not in (
                "success",
                "failed",
            ):
                time.sleep(0.002)
            durations.append(time.perf_counter() - started)
        client.close()
        stop.set()

    baseline = []
    for _ in range(runs):
        started = time.perf_counter()
        for _ in range(3):
            subprocess.run(["/bin/sh", "-c", "true"], check=True)
        baseline.append(time.perf_counter() - started)
    value_ms = statistics.median(durations) * 1000
    base_ms = statistics.median(baseline) * 1000
    return [
        {
            "name": "deployment POST->success (3 steps)",
            "backend": backend,
            "value": round(value_ms, 1),
            "unit": "ms",
            "baseline": round(base_ms, 1),
            "ratio": round(value_ms / base_ms, 2),
            "target": "overhead (value - baseline) <= 300 ms",
            "overhead_ms": round(value_ms - base_ms, 1),
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
        body = json.dumps({"metrics": _points(n)}).encode()
        content_type, path = "application/json", "/api/v1/metrics"
    with (
        _live_instance(url, "service") as (_app, _engine, token, base_url),
        tempfile.NamedTemporaryFile(suffix=".body") as body_file,
    ):
        body_file.write(body)
        body_file.flush()
        # The clients run in another process: in the server's own, their work would take
        # the server's GIL and the figure would measure the bench, not Shipboard.
        out = _load_tool(
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


def _driver_load(engine: Engine, backend: str, table: str, columns: str, rows: list[tuple]) -> None:
    """The baseline: rows written by the driver in one stream (COPY / executemany)."""
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        if backend == "postgres":
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
                for row in rows:
                    copy.write_row(row)
        else:
            marks = ", ".join("?" for _ in columns.split(","))
            cur.execute("BEGIN")
            cur.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)
        raw.commit()
    finally:
        raw.close()


def bench_log_append(url: str, backend: str, batches: int) -> list[dict[str, Any]]:
    """POST /api/v1/deployments/{id}/logs with batches of 1,000 lines against the driver."""
    import httpx

    lines = [
        {"level": "info", "message": f"step output line {i} " + "x" * 60, "source": "build"}
        for i in range(1000)
    ]
    body = json.dumps({"logs": lines}).encode()
    with _live_instance(url, "admin") as (_app, engine, token, base_url):
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=120) as client:
            did = client.post(
                "/api/v1/deployments",
                json={"environment": "development", "version": "9.9.9", "commit_sha": "abcdef1"},
            ).json()["id"]
            started = time.perf_counter()
            for _ in range(batches):
                client.post(f"/api/v1/deployments/{did}/logs", content=body).raise_for_status()
            rate = batches * 1000 / (time.perf_counter() - started)

        def baseline() -> None:
            now = datetime.now(UTC)
            rows = [
                (str(uuid.uuid4()), did, "info", line["message"], now.isoformat(), "build", None)
                for line in lines
            ]
            _driver_load(
                engine,
                backend,
                "deployment_logs",
                "id, deployment_id, level, message, timestamp, source, metadata",
                rows,
            )

        base = _best_rate(baseline, 1000, max(3, batches // 2))
    return [
        {
            "name": "log append via POST .../logs (1,000/batch)",
            "backend": backend,
            "value": round(rate),
            "unit": "lines/s",
            "baseline": round(base),
            "ratio": round(rate / base, 3),
            "target": 0.5,
        }
    ]


def _sarif(n: int, seed: int) -> bytes:
    results = [
        {
            "ruleId": f"rule-{i % 50}",
            "level": ("error", "warning", "note")[i % 3],
            "message": {"text": f"finding {i}"},
            "partialFingerprints": {
                "primaryLocationLineHash": f"{seed}-{i}" if i % 10 == 0 else f"h{i}"
            },
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": f"src/module_{i % 400}.py"},
                        "region": {"startLine": 1 + i % 500},
                    }
                }
            ],
        }
        for i in range(n)
    ]
    rules = [{"id": f"rule-{r}", "properties": {"tags": ["security"]}} for r in range(50)]
    return json.dumps(
        {
            "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "semgrep", "rules": rules}}, "results": results}],
        }
    ).encode()


def bench_security_import(url: str, backend: str, n: int) -> list[dict[str, Any]]:
    """A SARIF file with ``n`` results imported twice (the second matched against the first:
    fingerprints, resolve, reopen) against json.load + the driver writing the same rows."""
    from shipboard.security.imports import import_report

    migrate.upgrade(url)
    engine = create_db_engine(url)
    with system_transaction(engine) as s:
        seed_environments(s)
    first, second = _sarif(n, 1), _sarif(n, 2)
    times = []
    for data in (first, second):
        started = time.perf_counter()
        with system_transaction(engine) as s:
            import_report(
                s,
                environment="production",
                data=data,
                scan_type=None,
                tool=None,
                audit_context=None,
            )
        times.append(time.perf_counter() - started)

    def baseline() -> None:
        document = json.loads(first)
        scan_id = str(uuid.uuid4())
        now = datetime.now(UTC).isoformat()
        with system_transaction(engine) as s:
            s.execute(
                sa.text(
                    "INSERT INTO security_scans (id, type, environment, status, started_at) "
                    "VALUES (:id, 'sast', 'production', 'completed', :now)"
                ),
                {"id": scan_id, "now": now},
            )
        rows = [
            (
                str(uuid.uuid4()),
                scan_id,
                "high",
                r["message"]["text"],
                r["message"]["text"],
                r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
                False,
                now,
            )
            for r in document["runs"][0]["results"]
        ]
        _driver_load(
            engine,
            backend,
            "security_findings",
            "id, scan_id, severity, title, description, location, resolved, created_at",
            rows,
        )

    started = time.perf_counter()
    baseline()
    base = time.perf_counter() - started
    engine.dispose()
    return [
        {
            "name": f"SARIF import, {label} ({n:,} results)",
            "backend": backend,
            "value": round(t, 2),
            "unit": "s",
            "baseline": round(base, 2),
            "ratio": round(t / base, 2),
            "target": "<= 3x the baseline",
        }
        for label, t in (("first", times[0]), ("re-import", times[1]))
    ]


def _load_tool(url: str, token: str | None, *options: list[str]) -> dict[str, Any]:
    """bench/load.py in a process of its own."""
    import subprocess

    command = [sys.executable, "-m", "bench.load", url, *(o for group in options for o in group)]
    out = subprocess.run(  # noqa: S603 -- our own interpreter and module, our own arguments
        command + (["--token", token] if token else []),
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def _load(url: str, token: str | None, seconds: float) -> dict[str, Any]:
    """32 concurrent connections for ``seconds``: wrk when it is installed (``make bench``
    installs it), else bench/load.py, whose Python client tops out near 400 req/s on this machine
    and so understates the fast baseline (the result then says ``"tool": "python"``)."""
    import shutil

    if shutil.which("wrk"):
        return _wrk(url, token, seconds)
    result = _load_tool(url, token, ["--concurrency", "32", "--seconds", str(seconds)])
    return {**result, "tool": "python"}


def _wrk(url: str, token: str | None, seconds: float) -> dict[str, Any]:
    """wrk with one thread and 32 connections, its summary parsed."""
    import re
    import subprocess

    command = ["wrk", "-t1", "-c32", f"-d{max(1, round(seconds))}s", "--latency", url]
    if token:
        command[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(  # noqa: S603 -- a fixed tool, our own arguments
        command, capture_output=True, text=True, check=True
    ).stdout

    def ms(label: str) -> float:
        found = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        if found is None:
            raise RuntimeError(f"wrk printed no {label}% latency:\n{out}")
        return float(found[1]) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[found[2]]

    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    total = re.search(r"^\s*(\d+) requests in", out, re.MULTILINE)
    if rps is None or total is None:
        raise RuntimeError(f"wrk printed no rate:\n{out}")
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    errors = int(bad[1]) if bad else 0
    if socket_errors:
        errors += sum(int(n) for n in socket_errors.groups())
    return {
        "requests": int(total[1]),
        "errors": errors,
        "rps": float(rps[1]),
        "p50_ms": ms("50"),
        "p99_ms": ms("99"),
        "tool": "wrk",
    }


def bench_deployment_list(
    url: str, backend: str, rows: int, seconds: float
) -> list[dict[str, Any]]:
    """GET /api/v1/deployments?limit=50 over ``rows`` deployments under 32 concurrent
    connections, against a FastAPI route returning a constant 50-item list served the same way."""
    import socket
    import threading

    import uvicorn
    from fastapi import FastAPI

    with _live_instance(url, "viewer") as (_app, engine, token, base_url):
        t0 = datetime.now(UTC) - timedelta(days=365)
        data = [
            (
                str(uuid.uuid4()),
                ("development", "staging", "production")[i % 3],
                f"1.{i // 1000}.{i % 1000}",
                f"{i:07x}abc",
                ("success", "failed", "success", "success")[i % 4],
                (t0 + timedelta(minutes=5 * i)).isoformat(),
                (t0 + timedelta(minutes=5 * i + 2)).isoformat(),
                f"user{i % 25}",
            )
            for i in range(rows)
        ]
        _driver_load(
            engine,
            backend,
            "deployment_configs",
            "id, environment, version, commit_sha, status, created_at, completed_at, triggered_by",
            data,
        )
        measured = _load(f"{base_url}/api/v1/deployments?limit=50", token, seconds)

    sample = [
        {"id": str(uuid.uuid4()), "version": f"1.0.{i}", "status": "success"} for i in range(50)
    ]
    constant = FastAPI()

    @constant.get("/constant")
    def _constant() -> dict[str, Any]:
        return {"items": sample, "next_cursor": None}

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(constant, host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    try:
        base = _load(f"http://127.0.0.1:{port}/constant", None, seconds)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    return [
        {
            "name": f"GET /deployments?limit=50 ({rows:,} rows, 32 conn)",
            "backend": backend,
            "value": round(measured["rps"]),
            "unit": "req/s",
            "baseline": round(base["rps"]),
            "ratio": round(measured["rps"] / base["rps"], 3),
            "target": ">= 0.3, p99 <= 100 ms",
            "p99_ms": round(measured["p99_ms"], 1),
            "baseline_p99_ms": round(base["p99_ms"], 1),
            "errors": measured["errors"],
            "load_tool": measured["tool"],
        }
    ]


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
                _driver_load(engine, backend, "monitoring_metrics", columns, batch)
                batch = []
        if batch:
            _driver_load(engine, backend, "monitoring_metrics", columns, batch)

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


@contextmanager
def _server_process(url: str) -> Iterator[tuple[int, str, str]]:
    """``shipboard serve --no-worker`` in a process of its own on a migrated, seeded database,
    so its RSS is the server's alone: yields (pid, admin token, base URL)."""
    import socket
    import subprocess

    import httpx

    from shipboard.audit.service import AuditContext
    from shipboard.auth.schemas import UserCreate
    from shipboard.auth.service import create_user

    migrate.upgrade(url)
    engine = create_db_engine(url)
    with system_transaction(engine) as s:
        seed_environments(s)
        token = create_user(
            s,
            data=UserCreate(name=f"bench-{uuid.uuid4().hex[:6]}", role="admin"),  # type: ignore[arg-type]
            audit_context=AuditContext(actor="bench"),
        ).token
    engine.dispose()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryDirectory() as home:
        env = {
            **os.environ,
            "SHIPBOARD_HOME": home,
            "SHIPBOARD_DATABASE_URL": url,
            "SHIPBOARD_LOG_LEVEL": "warning",
        }
        log = Path(home) / "serve.log"
        proc = subprocess.Popen(  # noqa: S603 -- our own interpreter and module, our own arguments
            [sys.executable, "-m", "shipboard", "serve", "--no-worker", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log.open("wb"),
        )
        base_url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    said = log.read_text(errors="replace").strip().splitlines()[-15:]
                    raise RuntimeError(
                        "shipboard serve did not become ready in 60 s; it said:\n" + "\n".join(said)
                    )
                time.sleep(0.1)
            yield proc.pid, token, base_url
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def bench_sse_latency(url: str, backend: str, lines: int) -> list[dict[str, Any]]:
    """One log line at a time appended with POST .../logs; the time until a client on
    GET .../logs/stream receives it. p95 over ``lines`` lines; no baseline (an absolute target)."""
    import threading

    import httpx

    with _server_process(url) as (_pid, token, base_url):
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=base_url, headers=headers, timeout=30) as client:
            did = client.post(
                "/api/v1/deployments",
                json={"environment": "development", "version": "9.9.9", "commit_sha": "abcdef1"},
            ).json()["id"]
            received: dict[int, float] = {}
            connected = threading.Event()

            def listen() -> None:
                with (
                    httpx.Client(base_url=base_url, headers=headers, timeout=60) as stream_client,
                    stream_client.stream("GET", f"/api/v1/deployments/{did}/logs/stream") as r,
                ):
                    connected.set()
                    for line in r.iter_lines():
                        if line.startswith("data: ") and '"seq ' in line:
                            seq = int(line.split('"seq ', 1)[1].split('"', 1)[0])
                            received[seq] = time.perf_counter()
                            if seq == lines - 1:
                                return

            thread = threading.Thread(target=listen, daemon=True)
            thread.start()
            connected.wait(10)
            sent: dict[int, float] = {}
            for seq in range(lines):
                sent[seq] = time.perf_counter()
                client.post(
                    f"/api/v1/deployments/{did}/logs",
                    json={"logs": [{"level": "info", "message": f"seq {seq}", "source": "build"}]},
                ).raise_for_status()
                # Spread the lines over the stream's poll interval rather than in step with it.
                time.sleep(0.037 + (seq % 7) * 0.011)
            thread.join(timeout=30)
    latencies = sorted((received[i] - sent[i]) * 1000 for i in sent if i in received)
    if len(latencies) != lines:
        raise RuntimeError(f"the stream delivered {len(latencies)} of {lines} lines")
    p95 = latencies[int(len(latencies) * 0.95) - 1]
    return [
        {
            "name": "SSE latency, line appended -> received (p95)",
            "backend": backend,
            "value": round(p95, 1),
            "unit": "ms",
            "baseline": None,
            "ratio": None,
            "target": "<= 250 ms",
            "p50_ms": round(statistics.median(latencies), 1),
        }
    ]


def bench_memory(url: str, backend: str, points: int) -> list[dict[str, Any]]:
    """Server RSS after ingesting ``points`` points (10,000-point batches, 4 clients in another
    process) against its RSS just after start."""
    with (
        _server_process(url) as (pid, token, base_url),
        tempfile.NamedTemporaryFile(suffix=".body") as body_file,
    ):
        body_file.write(json.dumps({"metrics": _points(10_000)}).encode())
        body_file.flush()
        # Warm the routes once so the start figure includes what any server has loaded.
        _load_tool(
            f"{base_url}/api/v1/metrics",
            token,
            ["--concurrency", "1", "--post", body_file.name, "--requests", "1"],
        )
        start = _rss(pid)
        per_client = max(1, points // 10_000 // 4)
        # 503s (SQLite busy past its timeout behind a checkpoint) are retried as a client
        # would: this figure is about memory, and a retried batch is stored once.
        out = _load_tool(
            f"{base_url}/api/v1/metrics",
            token,
            ["--concurrency", "4", "--post", body_file.name, "--requests", str(per_client)],
            ["--retry-busy"],
        )
        end = _rss(pid)
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


def _machine() -> str:
    """Cores, CPU, Python, SQLite and PostgreSQL versions: the top line of the output."""
    import platform
    import sqlite3

    cpu = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    pg = "no server"
    try:
        engine = create_db_engine(PG_URL, poolclass=sa.pool.NullPool)
        with engine.connect() as conn:
            pg = str(conn.execute(sa.text("SHOW server_version")).scalar())
        engine.dispose()
    except sa.exc.OperationalError:
        pass
    return (
        f"machine: {os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"SQLite {sqlite3.sqlite_version}, PostgreSQL {pg}"
    )


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


@dataclass(frozen=True)
class Sizes:
    points: int
    repeats: int
    http_requests: int
    deployments: int
    log_batches: int
    sarif: int
    list_rows: int
    load_s: float
    series_small: int
    series_large: int
    series_names: int
    sse_lines: int
    memory_points: int


# Quick: 10 names x 3 environments x 2,000 then 20,000 minutes of history (> 24 h either way).
QUICK = Sizes(2_000, 3, 1, 5, 5, 2_000, 10_000, 3.0, 60_000, 600_000, 10, 40, 200_000)
FULL = Sizes(
    10_000, 5, 3, 20, 20, 20_000, 100_000, 10.0, 1_000_000, 10_000_000, 100, 200, 10_000_000
)


FIGURES = ("ingest", "http", "otlp", "deploy", "logs", "sarif", "list", "series", "sse", "memory")


def _steps(backend: str, z: Sizes) -> list[tuple[str, str, Callable[[str], list[dict[str, Any]]]]]:
    """(figure, what it does, run on a database URL) for one backend, in order."""
    return [
        ("ingest", f"ingest of {z.points} points x {z.repeats}",
         lambda url: bench_ingest(url, backend, z.points, z.repeats)),
        ("http", "HTTP ingest, 4 clients",
         lambda url: bench_http_ingest(url, backend, 10_000, z.http_requests)),
        ("otlp", "OTLP ingest, 4 clients",
         lambda url: bench_http_ingest(url, backend, 10_000, z.http_requests, otlp=True)),
        ("deploy", f"{z.deployments} deployments",
         lambda url: bench_deployment_overhead(url, backend, z.deployments)),
        ("logs", "log append", lambda url: bench_log_append(url, backend, z.log_batches)),
        ("sarif", f"SARIF import of {z.sarif:,} results, twice",
         lambda url: bench_security_import(url, backend, z.sarif)),
        ("list", f"deployment list over {z.list_rows:,} rows",
         lambda url: bench_deployment_list(url, backend, z.list_rows, z.load_s)),
        ("series", f"series query, {z.series_small:,} then {z.series_large:,} rows",
         lambda url: bench_series_query(
             url, backend, z.series_small, z.series_large, z.series_names)),
        ("sse", f"SSE latency over {z.sse_lines} lines",
         lambda url: bench_sse_latency(url, backend, z.sse_lines)),
        ("memory", f"server RSS while ingesting {z.memory_points:,} points",
         lambda url: bench_memory(url, backend, z.memory_points)),
    ]  # fmt: skip


@contextmanager
def _fresh_database(backend: str, tmp: str, figure: str) -> Iterator[str]:
    """A database of its own for one figure, removed afterwards: a figure never inherits
    another's rows (a server started on 10 M leftover points is not the figure measured), and
    the 10 M-row databases do not pile up on disk."""
    if backend == "sqlite":
        path = Path(tmp) / f"{figure}.db"
        try:
            yield f"sqlite:///{path}"
        finally:
            for leftover in Path(tmp).glob(f"{figure}.db*"):
                leftover.unlink()
        return
    pg = _pg_database()
    if pg is None:
        raise RuntimeError(f"no PostgreSQL server at {PG_URL}")
    url, drop = pg
    try:
        yield url
    finally:
        drop()


def _suite(
    backend: str, z: Sizes, only: set[str], record: Callable[[dict[str, Any]], None]
) -> None:
    """Every figure (or those in ``only``) on one backend, each recorded as it is measured.
    A figure that fails is recorded as an error and the suite goes on."""
    with tempfile.TemporaryDirectory() as tmp:
        for figure, what, run in _steps(backend, z):
            if only and figure not in only:
                continue
            print(f"{backend}: {what}", file=sys.stderr, flush=True)
            try:
                with _fresh_database(backend, tmp, figure) as url:
                    rows = run(url)
            except Exception as exc:  # noqa: BLE001 -- reported in the table, the rest still runs
                rows = [{"name": f"{figure}: FAILED", "backend": backend, "error": str(exc)}]
            for row in rows:
                record(row)


def _line(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"{r['name']:52} {r['backend']:9} ERROR {r['error']}"
    extra = "".join(
        f"  ({label} {r[key]})"
        for key, label in (
            ("overhead_ms", "overhead ms"),
            ("p99_ms", "p99 ms"),
            ("baseline_p99_ms", "baseline p99 ms"),
            ("p50_ms", "p50 ms"),
            ("growth_mib", "growth MiB"),
            ("load_tool", "load"),
            ("statuses", "statuses"),
        )
        if key in r
    )
    ratio = "-" if r["ratio"] is None else f"{r['ratio']:.3f}"
    return (
        f"{r['name']:52} {r['backend']:9} {r['value']:>10} {r['baseline'] or '-'!s:>10} "
        f"{ratio:>7}  {r['unit']:12} {r['target'] or '-'}{extra}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--quick", action="store_true", help="smaller sizes (< 2 min)")
    parser.add_argument(
        "--backend", choices=("sqlite", "postgres", "both"), default="both", help="which to run"
    )
    parser.add_argument(
        "--only",
        default="",
        help=f"comma-separated figures to run (default: all): {', '.join(FIGURES)}",
    )
    args = parser.parse_args()
    only = {f.strip() for f in args.only.split(",") if f.strip()}
    if unknown := only - set(FIGURES):
        parser.error(f"unknown figure(s) {', '.join(sorted(unknown))}; choose from {FIGURES}")
    sizes = QUICK if args.quick else FULL
    machine = _machine()
    print(machine, file=sys.stderr, flush=True)
    results: list[dict[str, Any]] = []
    out = Path(__file__).with_name("results.json")

    def record(row: dict[str, Any]) -> None:
        # Printed and saved as each figure ends: a long run that dies keeps what it measured.
        results.append(row)
        print(f"  {_line(row)}", file=sys.stderr, flush=True)
        out.write_text(json.dumps(results, indent=2) + "\n")

    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    for backend in backends:
        if backend == "postgres":
            pg = _pg_database()
            if pg is None:
                print(f"postgres: skipped, no server at {PG_URL}", file=sys.stderr)
                continue
            pg[1]()
        _suite(backend, sizes, only, record)

    header = (
        f"{'figure':52} {'backend':9} {'value':>10} {'baseline':>10} {'ratio':>7}  "
        f"{'unit':12} target"
    )
    print(machine)
    print(header)
    print("-" * len(header))
    for r in results:
        print(_line(r))
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    raise SystemExit(main())
