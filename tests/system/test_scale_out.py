"""Scale-out, shown: two API processes and two workers on one PostgreSQL, sharing Redis.

Every process is a real `shipboard` subprocess, as an operator runs them (docs/scaling.md).
"""

from __future__ import annotations

import itertools
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.auth import service as auth
from shipboard.auth.schemas import UserCreate
from shipboard.core.crypto import generate_key
from shipboard.db.engine import create_db_engine, system_transaction
from shipboard.db.leader import SCHEDULER_LEADER_LOCK
from tests.support.databases import IN_CI, SYSTEM, DatabaseFactory
from tests.support.live import free_port, wait_for

REDIS_URL = os.environ.get("SHIPBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TERMINAL = ("success", "failed", "rolled_back")

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


class ScrapeTarget:
    """A Prometheus target that records when it is scraped."""

    def __init__(self) -> None:
        self.hits: list[float] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.hits.append(time.monotonic())
                body = b"shipboard_scale_probe 1\n"
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/metrics"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def gaps(self, since: float = 0.0) -> list[float]:
        hits = [h for h in self.hits if h >= since]
        return [b - a for a, b in itertools.pairwise(hits)]


class Cluster:
    def __init__(self, url: str, home: Path) -> None:
        self.env = {
            **os.environ,
            "SHIPBOARD_DATABASE_URL": url,
            "SHIPBOARD_HOME": str(home),
            # One key for every process: any of them decrypts what another encrypted.
            "SHIPBOARD_SECRET_KEYS": generate_key(),
            "SHIPBOARD_REDIS_URL": REDIS_URL,
            "SHIPBOARD_EVAL_INTERVAL_S": "0.5",
            "SHIPBOARD_DB_POOL_SIZE": "3",
            "SHIPBOARD_DB_MAX_OVERFLOW": "2",
            "SHIPBOARD_LOG_LEVEL": "warning",
        }
        self.home = home
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.apis: list[str] = []

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        with (self.home / f"{name}.log").open("wb") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "shipboard", *args],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
        self.procs[name] = proc
        return proc

    def serve(self, name: str) -> None:
        port = free_port()
        self.start(name, "serve", "--no-worker", "--port", str(port))
        self.apis.append(f"http://127.0.0.1:{port}")

    def log(self, name: str) -> str:
        return (self.home / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} unavailable under CI=true: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} unavailable: {exc}")
    return REDIS_URL


@pytest.fixture
def cluster(databases: DatabaseFactory, tmp_path: Path, redis_url: str) -> Iterator[Cluster]:
    database = databases.new("postgres")
    running = Cluster(database.url, tmp_path)
    yield running
    running.stop()


def _leaders(engine: Engine) -> list[str]:
    """Who holds the scheduler's leadership lock, by ``application_name``."""
    with engine.connect() as conn:
        return list(
            conn.scalars(
                sa.text(
                    "SELECT a.application_name FROM pg_locks l "
                    "JOIN pg_stat_activity a ON a.pid = l.pid "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = 0 "
                    "AND l.objid = :key AND l.objsubid = 1 "
                    "AND l.database = (SELECT oid FROM pg_database "
                    "WHERE datname = current_database())"
                ),
                {"key": SCHEDULER_LEADER_LOCK},
            )
        )


def _leader_pid(engine: Engine) -> int | None:
    leaders = _leaders(engine)
    assert len(leaders) <= 1, leaders
    return int(leaders[0].rsplit(":", 1)[1]) if leaders else None


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_two_apis_and_two_workers_share_one_postgres(cluster: Cluster) -> None:
    started = time.monotonic()
    # Both API processes start at once on an empty database: one migrates, seeds and creates
    # the admin; the other waits for it and finds the work done.
    cluster.serve("api-a")
    cluster.serve("api-b")
    for api in cluster.apis:
        wait_for(lambda api=api: _answers(f"{api}/readyz"), timeout=60, interval=0.1)
    assert sum("created user 'admin'" in cluster.log(n) for n in ("api-a", "api-b")) == 1
    workers = {
        name: cluster.start(name, "worker", "--poll", "0.1", "--lease", "3")
        for name in ("worker-1", "worker-2")
    }
    worker_pids = {proc.pid for proc in workers.values()}
    engine = create_db_engine(cluster.env["SHIPBOARD_DATABASE_URL"], poolclass=sa.pool.NullPool)
    with system_transaction(engine) as session:
        token = auth.create_user(
            session, data=UserCreate(name="operator", role="admin"), audit_context=SYSTEM
        ).token
    headers = {"Authorization": f"Bearer {token}"}
    clients = [httpx.Client(base_url=api, headers=headers, timeout=30) for api in cluster.apis]
    try:
        _deployments_run_once(clients, engine, worker_pids)
        target = ScrapeTarget()
        try:
            _periodic_jobs_on_one_node_and_failover(clients, engine, workers, target)
        finally:
            target.server.shutdown()
        _rate_limits_are_shared(clients, engine)
    finally:
        for client in clients:
            client.close()
        engine.dispose()
    took = time.monotonic() - started
    print(f"scale-out scenario: {took:.1f} s")


def _deployments_run_once(
    clients: list[httpx.Client], engine: Engine, worker_pids: set[int]
) -> None:
    pipeline = {"steps": [{"name": "ship", "stage": "deploy", "run": "sleep 0.2"}]}
    for env in ("development", "staging"):
        response = clients[0].patch(
            f"/api/v1/environments/{env}", json={"config": {"pipeline": pipeline}}
        )
        assert response.status_code == 200, response.text
    ids = []
    for i in range(16):
        response = clients[i % 2].post(
            "/api/v1/deployments",
            json={
                "environment": ("development", "staging")[i % 2],
                "version": f"1.0.{i}",
                "commit_sha": "abcdef1",
            },
        )
        assert response.status_code == 201, response.text
        ids.append(response.json()["id"])

    def done(did: str) -> bool:
        return clients[1].get(f"/api/v1/deployments/{did}").json()["status"] in TERMINAL

    for did in ids:
        wait_for(lambda did=did: done(did), timeout=60, interval=0.1)
        assert clients[0].get(f"/api/v1/deployments/{did}").json()["status"] == "success"
    with engine.connect() as conn:
        claims = conn.execute(
            sa.text(
                "SELECT deployment_id, message FROM deployment_logs "
                "WHERE message LIKE 'status pending -> building%'"
            )
        ).all()
    assert sorted(str(d) for d, _ in claims) == sorted(ids)  # each claimed exactly once
    claimers = {int(re.search(r":(\d+):[0-9a-f]{6}\)", m)[1]) for _, m in claims}  # type: ignore[index]
    assert claimers == worker_pids  # and both workers took a share


def _periodic_jobs_on_one_node_and_failover(
    clients: list[httpx.Client],
    engine: Engine,
    workers: dict[str, subprocess.Popen[bytes]],
    target: ScrapeTarget,
) -> None:
    pids = {proc.pid: name for name, proc in workers.items()}
    leader = wait_for(lambda: _leader_pid(engine), timeout=10)
    assert leader in pids
    # The leader scrapes (so does alert evaluation, reports, retention: the same election).
    response = clients[1].patch(
        "/api/v1/environments/production",
        json={"config": {"monitoring": {"scrape": [{"url": target.url, "interval_s": 1}]}}},
    )
    assert response.status_code == 200, response.text
    wait_for(lambda: len(target.hits) >= 4, timeout=15)
    for _ in range(5):
        assert _leader_pid(engine) == leader  # sticky, and never two
        time.sleep(0.1)
    # Two nodes scraping would hit it about twice a second; one hits it once per interval.
    assert min(target.gaps()) > 0.7, target.gaps()

    killed_at = time.monotonic()
    workers[pids[leader]].send_signal(signal.SIGKILL)
    workers[pids[leader]].wait(timeout=10)
    successor = wait_for(
        lambda: (pid := _leader_pid(engine)) is not None and pid != leader and pid, timeout=15
    )
    failover = time.monotonic() - killed_at
    assert successor in pids
    print(f"leadership moved in {failover:.2f} s")
    hits_before = len(target.hits)
    wait_for(lambda: len(target.hits) >= hits_before + 3, timeout=15)
    after = [h for h in target.hits if h > killed_at]
    assert after, "no scrape after the leader died"
    assert min(target.gaps(since=killed_at)) > 0.7, target.gaps(since=killed_at)
    # The surviving worker runs deployments on its own.
    response = clients[0].post(
        "/api/v1/deployments",
        json={"environment": "staging", "version": "2.0.0", "commit_sha": "abcdef2"},
    )
    assert response.status_code == 201, response.text
    did = response.json()["id"]
    wait_for(
        lambda: clients[1].get(f"/api/v1/deployments/{did}").json()["status"] == "success",
        timeout=30,
    )


def _rate_limits_are_shared(clients: list[httpx.Client], engine: Engine) -> None:
    with system_transaction(engine) as session:
        token = auth.create_user(
            session,
            data=UserCreate(name=f"limited-{uuid.uuid4().hex[:6]}", role="admin"),
            audit_context=SYSTEM,
        ).token
    response = clients[0].patch(
        "/api/v1/environments/production", json={"limits": {"api_rate_limit": 3}}
    )
    assert response.status_code == 200, response.text
    statuses = []
    for i in range(5):
        api = clients[i % 2]
        statuses.append(
            httpx.put(
                f"{api.base_url}/api/v1/environments/production/features/f{i}",
                json={"enabled": True},
                headers={"Authorization": f"Bearer {token}"},
            ).status_code
        )
    # Three a minute in total, whichever process answers: the counter lives in Redis.
    assert statuses == [200, 200, 200, 429, 429]
