"""`make soak`: steady mixed traffic against a real `shipboard serve` for a long time.

``python -m bench.soak --minutes 30 [--backend sqlite|postgres]`` starts ``shipboard serve``
(API, in-process worker and scheduler: the one-process setup) on a fresh database, then for the
whole run, at a fixed rate, from this process:

- ingests metrics (``POST /api/v1/metrics``, 200 points every 0.2 s: 1,000 points/s),
- queries (series, the deployment list, alerts, environments: 4 requests/s),
- starts a deployment with a three-step pipeline that writes log lines (one every 10 s),
- keeps SSE clients on the newest deployment's log stream, each reading to its ``end``.

Every minute it prints requests, errors, p99 and the server's RSS. At the end it stops the
traffic, waits for every deployment to finish (the queue drained) and checks the criteria of
issue #12: zero errors, RSS growth after warm-up ≤ 10 %, the last window's p99 within 1.5× the
first's (or 25 ms, on a small noisy machine a few ms swing is not a trend), the queue drained.
Exit status 0 when all hold, 1 otherwise; ``bench/soak.json`` keeps the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from bench.support import rss as _rss

PG_URL = os.environ.get(
    "SHIPBOARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
TERMINAL = {"success", "failed", "cancelled", "rolled_back", "superseded"}
PIPELINE = [
    {"name": "build", "stage": "build", "run": "echo building; sleep 0.2"},
    {
        "name": "deploy",
        "stage": "deploy",
        "run": "for i in 1 2 3 4 5 6 7 8 9 10; do echo deploying part $i; sleep 0.1; done",
    },
    {"name": "verify", "stage": "verify", "run": "echo verified"},
]


@dataclass
class Sample:
    at: float  # seconds since the start of traffic
    kind: str
    seconds: float
    ok: bool


@dataclass
class Run:
    started: float = field(default_factory=time.perf_counter)
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)  # (t, bytes)
    deployments: list[str] = field(default_factory=list)
    sse_streams: int = 0
    sse_lines: int = 0

    def now(self) -> float:
        return time.perf_counter() - self.started

    def record(self, kind: str, began: float, response: httpx.Response | None, what: str) -> None:
        ok = response is not None and response.status_code < 400
        self.samples.append(Sample(began, kind, self.now() - began, ok))
        if not ok:
            status = "no response" if response is None else str(response.status_code)
            body = "" if response is None else response.text[:200]
            self.errors.append(f"{self.now():.0f}s {kind} {what}: {status} {body}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _p99(values: list[float]) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, int(len(ordered) * 0.99) - 1)]


async def _every(period: float, until: float, run: Run, action: Any) -> None:
    """Call ``action`` at a fixed rate (not back to back): a slow answer does not lower the load."""
    tick = run.now()
    while tick < until:
        await action()
        tick += period
        delay = tick - run.now()
        if delay > 0:
            await asyncio.sleep(delay)


async def _traffic(client: httpx.AsyncClient, run: Run, seconds: float) -> None:
    rng = random.Random(12)  # noqa: S311 - seeded test data, not secrets
    until = run.now() + seconds

    async def call(kind: str, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        began = run.now()
        response = None
        try:
            response = await client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            run.errors.append(f"{began:.0f}s {kind}: {type(exc).__name__} {exc}")
        run.record(kind, began, response, url)
        return response

    async def ingest() -> None:
        now = datetime.now(UTC)
        points = [
            {
                "name": f"soak_metric_{i % 10}",
                "value": rng.random() * 100,
                "timestamp": (now - timedelta(milliseconds=i)).isoformat(),
                "environment": ("development", "staging", "production")[i % 3],
                "tags": {"host": f"h{i % 4}"},
                "source": "application",
            }
            for i in range(200)
        ]
        await call("ingest", "POST", "/api/v1/metrics", json={"metrics": points})

    queries = [
        "/api/v1/metrics/series?name=soak_metric_1&environment=production&step=60",
        "/api/v1/deployments?limit=50",
        "/api/v1/alerts",
        "/api/v1/environments",
    ]
    turn = 0

    async def query() -> None:
        nonlocal turn
        turn += 1
        await call("query", "GET", queries[turn % len(queries)])

    async def deploy() -> None:
        version = f"1.0.{len(run.deployments)}"
        response = await call(
            "deploy",
            "POST",
            "/api/v1/deployments",
            json={"environment": "development", "version": version, "commit_sha": "abcdef1"},
        )
        if response is not None and response.status_code < 400:
            run.deployments.append(response.json()["id"])

    async def sse_client() -> None:
        seen: set[str] = set()
        while run.now() < until:
            if not run.deployments or run.deployments[-1] in seen:
                await asyncio.sleep(0.5)
                continue
            did = run.deployments[-1]
            seen.add(did)
            began = run.now()
            try:
                async with client.stream(
                    "GET", f"/api/v1/deployments/{did}/logs/stream", timeout=120
                ) as response:
                    ended = False
                    async for line in response.aiter_lines():
                        if line.startswith("event: log"):
                            run.sse_lines += 1
                        elif line.startswith("event: end"):
                            ended = True
                    run.sse_streams += 1
                    if response.status_code != 200 or not ended:
                        run.errors.append(
                            f"{began:.0f}s sse {did}: {response.status_code}, end={ended}"
                        )
            except httpx.HTTPError as exc:
                run.errors.append(f"{began:.0f}s sse {did}: {type(exc).__name__} {exc}")

    await asyncio.gather(
        _every(0.2, until, run, ingest),
        _every(0.25, until, run, query),
        _every(10.0, until, run, deploy),
        *(sse_client() for _ in range(3)),
    )


async def _monitor(pid: int, run: Run, seconds: float) -> None:
    last_report = 0.0
    while run.now() < seconds:
        run.rss.append((run.now(), _rss(pid)))
        if run.now() - last_report >= 60:
            last_report = run.now()
            recent = [s.seconds for s in run.samples if s.at >= run.now() - 60 and s.kind != "sse"]
            print(
                f"  {run.now() / 60:5.1f} min: {len(run.samples):>7} requests, "
                f"{len(run.errors)} errors, p99 (last min) {_p99(recent) * 1000:6.1f} ms, "
                f"RSS {run.rss[-1][1] / 2**20:6.1f} MiB, {len(run.deployments)} deployments",
                file=sys.stderr,
                flush=True,
            )
        await asyncio.sleep(5)


async def _drain(client: httpx.AsyncClient, run: Run, timeout: float) -> int:
    """Wait for every deployment to end; the count still unfinished after ``timeout``."""
    deadline = time.perf_counter() + timeout
    pending = list(run.deployments)
    while pending and time.perf_counter() < deadline:
        still = []
        for did in pending:
            response = await client.get(f"/api/v1/deployments/{did}")
            if response.status_code != 200 or response.json()["status"] not in TERMINAL:
                still.append(did)
        pending = still
        if pending:
            await asyncio.sleep(0.5)
    return len(pending)


async def _main(base_url: str, token: str, pid: int, seconds: float) -> dict[str, Any]:
    run = Run()
    headers = {"Authorization": f"Bearer {token}"}
    limits = httpx.Limits(max_connections=20, max_keepalive_connections=20)
    async with httpx.AsyncClient(
        base_url=base_url, headers=headers, timeout=30, limits=limits
    ) as client:
        response = await client.patch(
            "/api/v1/environments/development",
            json={"config": {"pipeline": {"steps": PIPELINE}}},
        )
        response.raise_for_status()
        await asyncio.gather(_traffic(client, run, seconds), _monitor(pid, run, seconds))
        traffic_end = run.now()
        unfinished = await _drain(client, run, timeout=120)
        drained_in = run.now() - traffic_end
        statuses: dict[str, int] = {}
        for did in run.deployments:
            status = (await client.get(f"/api/v1/deployments/{did}")).json()["status"]
            statuses[status] = statuses.get(status, 0) + 1
    run.rss.append((run.now(), _rss(pid)))
    return _verdict(run, seconds, unfinished, drained_in, statuses)


def _verdict(
    run: Run, seconds: float, unfinished: int, drained_in: float, statuses: dict[str, int]
) -> dict[str, Any]:
    warmup = max(30.0, seconds * 0.1)
    window = max(30.0, (seconds - warmup) * 0.2)
    after_warmup = [b for t, b in run.rss if t >= warmup] or [run.rss[-1][1]]
    rss_start, rss_end = after_warmup[0], run.rss[-1][1]
    timed = [s for s in run.samples if s.kind != "sse"]
    first = [s.seconds for s in timed if warmup <= s.at < warmup + window]
    last = [s.seconds for s in timed if s.at >= seconds - window]
    p99_first, p99_last = _p99(first) * 1000, _p99(last) * 1000
    growth = (rss_end - rss_start) / rss_start
    failed = statuses.get("failed", 0)
    checks = {
        "zero errors": not run.errors,
        "RSS growth after warm-up <= 10 %": growth <= 0.10,
        "p99 stable (last <= max(1.5 x first, first + 25 ms))": p99_last
        <= max(1.5 * p99_first, p99_first + 25),
        "queue drained": unfinished == 0,
        "every deployment succeeded": failed == 0 and statuses.get("success", 0) > 0,
    }
    return {
        "minutes": round(seconds / 60, 2),
        "requests": len(timed),
        "by_kind": {k: sum(1 for s in timed if s.kind == k) for k in ("ingest", "query", "deploy")},
        "points_ingested": 200 * sum(1 for s in timed if s.kind == "ingest" and s.ok),
        "errors": len(run.errors),
        "first_errors": run.errors[:10],
        "deployments": statuses,
        "sse_streams": run.sse_streams,
        "sse_lines": run.sse_lines,
        "rss_start_mib": round(rss_start / 2**20, 1),
        "rss_end_mib": round(rss_end / 2**20, 1),
        "rss_max_mib": round(max(b for _, b in run.rss) / 2**20, 1),
        "rss_growth_pct": round(growth * 100, 1),
        "p99_first_ms": round(p99_first, 1),
        "p99_last_ms": round(p99_last, 1),
        "drained_in_s": round(drained_in, 1),
        "unfinished": unfinished,
        "checks": checks,
        "passed": all(checks.values()),
    }


def _start_server(database_url: str, home: Path) -> tuple[subprocess.Popen[str], str, str]:
    port = _free_port()
    env = {
        **os.environ,
        "SHIPBOARD_HOME": str(home),
        "SHIPBOARD_DATABASE_URL": database_url,
        "SHIPBOARD_LOG_LEVEL": "warning",
    }
    proc = subprocess.Popen(  # noqa: S603 - our own interpreter and fixed arguments
        [sys.executable, "-m", "shipboard", "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    token = None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if "Its API token" in line:
            token = proc.stderr.readline().strip()
            break
    if token is None:
        proc.kill()
        raise SystemExit("shipboard serve did not print an admin token:\n" + "".join(lines))
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base_url}/readyz", timeout=2).status_code == 200:
                break
        time.sleep(0.1)
    # Keep reading stderr so a chatty server never blocks on a full pipe.
    threading.Thread(target=lambda: [None for _ in proc.stderr or ()], daemon=True).start()
    return proc, base_url, token


def _pg_database() -> tuple[str, Any]:
    name = f"shipboard_soak_{os.getpid()}"
    admin = sa.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.engine.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return url, drop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--minutes", type=float, default=30.0, help="traffic duration")
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).with_name("soak.json"), help="figures"
    )
    args = parser.parse_args(argv)
    seconds = args.minutes * 60
    with tempfile.TemporaryDirectory() as tmp:
        drop = None
        if args.backend == "postgres":
            url, drop = _pg_database()
        else:
            url = f"sqlite:///{tmp}/soak.db"
        proc, base_url, token = _start_server(url, Path(tmp) / "home")
        print(
            f"soak: {args.minutes:g} min of mixed traffic on {args.backend}, "
            f"{os.cpu_count()} cores, server pid {proc.pid} at {base_url}",
            file=sys.stderr,
            flush=True,
        )
        try:
            result = asyncio.run(_main(base_url, token, proc.pid, seconds))
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            if drop is not None:
                drop()
    result["backend"] = args.backend
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for key, value in result.items():
        if key not in ("checks", "first_errors"):
            print(f"{key:18} {value}")
    for check, ok in result["checks"].items():
        print(f"{'PASS' if ok else 'FAIL'}  {check}")
    for error in result["first_errors"]:
        print(f"  error: {error}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
