"""Deployment figures: the overhead of a deployment run, log append, the deployment list under
load, and the latency of the live log stream."""

from __future__ import annotations

import json
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from bench.support import (
    best_rate,
    driver_load,
    live_instance,
    load_url,
    server_process,
)


def bench_deployment_overhead(url: str, backend: str, runs: int) -> list[dict[str, Any]]:
    """POST /deployments -> success for a three-step pipeline of `true`, through a real server
    and the in-process worker with default settings, against the same three commands run with
    /bin/sh -c directly."""
    import subprocess

    import httpx

    from shipboard.pipelines.worker import Worker, start_in_thread

    durations = []
    with live_instance(url, "admin") as (app, engine, token, base_url):
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


def bench_log_append(url: str, backend: str, batches: int) -> list[dict[str, Any]]:
    """POST /api/v1/deployments/{id}/logs with batches of 1,000 lines against the driver."""
    import httpx

    lines = [
        {"level": "info", "message": f"step output line {i} " + "x" * 60, "source": "build"}
        for i in range(1000)
    ]
    body = json.dumps({"logs": lines}).encode()
    with live_instance(url, "admin") as (_app, engine, token, base_url):
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
            driver_load(
                engine,
                backend,
                "deployment_logs",
                "id, deployment_id, level, message, timestamp, source, metadata",
                rows,
            )

        base = best_rate(baseline, 1000, max(3, batches // 2))
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


def bench_deployment_list(
    url: str, backend: str, rows: int, seconds: float
) -> list[dict[str, Any]]:
    """GET /api/v1/deployments?limit=50 over ``rows`` deployments under 32 concurrent
    connections, against a FastAPI route returning a constant 50-item list served the same way."""
    import socket
    import threading

    import uvicorn
    from fastapi import FastAPI

    with live_instance(url, "viewer") as (_app, engine, token, base_url):
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
        driver_load(
            engine,
            backend,
            "deployment_configs",
            "id, environment, version, commit_sha, status, created_at, completed_at, triggered_by",
            data,
        )
        measured = load_url(f"{base_url}/api/v1/deployments?limit=50", token, seconds)
        # The token lookup alone (the route returns the caller), and the overview page signed
        # in with a session cookie: the other request paths issue 24 names.
        me = load_url(f"{base_url}/api/v1/me", token, seconds)
        overview = load_url(f"{base_url}/", None, seconds, cookie=_signed_in(engine, token))

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
        base = load_url(f"http://127.0.0.1:{port}/constant", None, seconds)
    finally:
        server.should_exit = True
        thread.join(timeout=10)

    def row(name: str, found: dict[str, Any], target: str) -> dict[str, Any]:
        return {
            "name": name,
            "backend": backend,
            "value": round(found["rps"]),
            "unit": "req/s",
            "baseline": round(base["rps"]),
            "ratio": round(found["rps"] / base["rps"], 3),
            "target": target,
            "p99_ms": round(found["p99_ms"], 1),
            "baseline_p99_ms": round(base["p99_ms"], 1),
            "errors": found["errors"],
            "load_tool": found["tool"],
        }

    return [
        row(
            f"GET /deployments?limit=50 ({rows:,} rows, 32 conn)", measured, ">= 0.3, p99 <= 100 ms"
        ),
        row("GET /api/v1/me (token lookup, 32 conn)", me, "–"),
        row(f"GET / overview page, signed in ({rows:,} deployments)", overview, "–"),
    ]


def _signed_in(engine: Any, token: str) -> str:
    """A session cookie for the user behind ``token``, as the sign-in form would set it."""
    from shipboard.audit.service import AuditContext
    from shipboard.auth import sessions
    from shipboard.auth.deps import SESSION_COOKIE
    from shipboard.auth.service import authenticate_token
    from shipboard.db.engine import system_transaction

    password = uuid.uuid4().hex
    with system_transaction(engine) as session:
        name = authenticate_token(session, token=token).name
        sessions.set_password(
            session, name=name, password=password, audit_context=AuditContext(actor="bench")
        )
        outcome = sessions.login(
            session, name=name, password=password, source_ip=None, now=datetime.now(UTC)
        )
    if not outcome.ok or outcome.cookie is None:
        raise RuntimeError(f"the bench user could not sign in: {outcome.message}")
    return f"{SESSION_COOKIE}={outcome.cookie}"


def bench_sse_latency(url: str, backend: str, lines: int) -> list[dict[str, Any]]:
    """One log line at a time appended with POST .../logs; the time until a client on
    GET .../logs/stream receives it. p95 over ``lines`` lines; no baseline (an absolute target)."""
    import threading

    import httpx

    with server_process(url) as (_pid, token, base_url):
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
