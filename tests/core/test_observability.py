"""Shipboard watching itself: /metrics, request ids in logs, and what /readyz refuses on."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from shipboard.deployments.models import DeploymentRun
from tests.support.databases import PG_BASE_URL, Database
from tests.support.factories import start_deployment
from tests.support.live import Clients, LiveServer, free_port, wait_for
from tests.support.problems import assert_problem
from tests.support.telemetry import scrape, value
from tests.support.users import user_token

METRICS_TOKEN = "metrics-" + uuid.uuid4().hex


@pytest.fixture
def live(db: Database) -> Iterator[Any]:
    """Start extra servers with their own settings; stopped after the test."""
    started: list[LiveServer] = []

    def start(url: str | None = None, **overrides: Any) -> LiveServer:
        server = LiveServer(url or db.url, **overrides)
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def _set_pipeline(admin: httpx.Client, env: str = "staging") -> None:
    response = admin.patch(
        f"/api/v1/environments/{env}",
        json={"config": {"pipeline": {"steps": [{"name": "n", "stage": "deploy", "run": "true"}]}}},
    )
    assert response.status_code == 200, response.text


# --- /metrics -----------------------------------------------------------------------------------


def test_requests_are_counted_by_route_template_and_status(clients: Clients) -> None:
    route = "/api/v1/deployments/{deployment_id}"
    with clients.as_role("admin") as admin:
        before = scrape(admin)
        ids = [str(uuid.uuid4()) for _ in range(3)]
        for deployment_id in ids:
            assert admin.get(f"/api/v1/deployments/{deployment_id}").status_code == 404
        assert admin.get("/no/such/page/here").status_code == 404
        after = scrape(admin)
        text = admin.get("/metrics").text
    labels = {"method": "GET", "route": route, "status": "404"}
    counted = "shipboard_http_requests_total"
    assert value(after, counted, **labels) - value(before, counted, **labels) == 3
    timed = "shipboard_http_request_duration_seconds_count"
    assert value(after, timed, **labels) - value(before, timed, **labels) == 3
    assert value(after, "shipboard_http_request_duration_seconds_sum", **labels) > 0
    # Raw paths never become labels: one series per id would grow without bound.
    assert not any(deployment_id in text for deployment_id in ids)
    unmatched = {"method": "GET", "route": "<unmatched>", "status": "404"}
    assert value(after, counted, **unmatched) - value(before, counted, **unmatched) >= 1


def test_ingested_points_are_counted_accepted_and_rejected(clients: Clients) -> None:
    otlp = {
        "resourceMetrics": [
            {
                "resource": {
                    "attributes": [
                        {"key": "deployment.environment.name", "value": {"stringValue": env}}
                    ]
                },
                "scopeMetrics": [
                    {"metrics": [{"name": "q", "gauge": {"dataPoints": [{"asDouble": 1.0}] * n}}]}
                ],
            }
            for env, n in (("staging", 2), ("nowhere", 1))
        ]
    }
    point = {"name": "m", "value": 1, "environment": "staging", "source": "test"}
    with clients.as_role("admin") as admin:
        before = scrape(admin)
    with clients.as_role("service") as service:
        assert service.post("/api/v1/metrics", json={"metrics": [point] * 3}).status_code == 200
        refused = service.post(
            "/api/v1/metrics",
            json={"metrics": [point, {**point, "timestamp": "2999-01-01T00:00:00Z"}]},
        )
        assert refused.status_code == 422, refused.text
        assert service.post("/v1/metrics", json=otlp).status_code == 200
        response = service.post(
            "/api/v1/performance/metrics",
            json={"metrics": [{"name": "b", "value": 1, "unit": "ms", "environment": "staging"}]},
        )
        assert response.status_code == 201, response.text
    with clients.as_role("admin") as admin:
        after = scrape(admin)

    def moved(kind: str, result: str) -> float:
        name = "shipboard_ingest_points_total"
        return value(after, name, kind=kind, result=result) - value(
            before, name, kind=kind, result=result
        )

    assert (moved("metrics", "accepted"), moved("metrics", "rejected")) == (3, 2)
    assert (moved("otlp", "accepted"), moved("otlp", "rejected")) == (2, 1)
    assert (moved("performance", "accepted"), moved("performance", "rejected")) == (1, 0)


def test_queue_depth_and_oldest_age_follow_pending_deployments(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        empty = scrape(admin)
        assert value(empty, "shipboard_deployment_queue_depth", environment="staging") == 0
        assert value(empty, "shipboard_deployment_queue_oldest_age_seconds") == 0
        _set_pipeline(admin)
        for version in ("1.0.0", "1.0.1"):
            start_deployment(admin, "staging", version)
        time.sleep(0.2)
        waiting = scrape(admin)
    assert value(waiting, "shipboard_deployment_queue_depth", environment="staging") == 2
    assert value(waiting, "shipboard_deployment_queue_depth", environment="production") == 0
    assert value(waiting, "shipboard_deployment_queue_oldest_age_seconds") >= 0.2
    assert value(waiting, "shipboard_worker_leases", state="active") == 0
    assert value(waiting, "shipboard_db_up") == 1
    assert value(waiting, "shipboard_db_pool_size", pool="sync") >= 1
    # The scrape's own connection (the route runs in a thread: its collectors connect).
    assert value(waiting, "shipboard_db_pool_checked_out", pool="sync") >= 1
    assert value(waiting, "shipboard_notification_deliveries", status="pending") == 0


def test_a_running_deployment_shows_an_active_lease(clients: Clients, engine: Engine) -> None:
    from shipboard.pipelines.worker import Worker, start_in_thread

    with clients.as_role("admin") as admin:
        admin.patch(
            "/api/v1/environments/staging",
            json={
                "config": {
                    "pipeline": {"steps": [{"name": "s", "stage": "deploy", "run": "sleep 3"}]}
                }
            },
        )
        did = start_deployment(admin, "staging", "2.0.0")
        thread, stop = start_in_thread(
            Worker(engine, clients.server.app.state.keyring, poll_s=0.05, lease_s=10)
        )
        try:
            wait_for(lambda: admin.get(f"/api/v1/deployments/{did}").json()["status"] != "pending")
            running = scrape(admin)
        finally:
            stop.set()
            thread.join(timeout=30)
    assert value(running, "shipboard_worker_leases", state="active") == 1
    assert value(running, "shipboard_deployment_queue_depth", environment="staging") == 0


def test_scraping_needs_an_admin_or_the_metrics_token(clients: Clients, live: Any) -> None:
    for role, status in ((None, 401), ("viewer", 403), ("service", 403), ("admin", 200)):
        with clients.as_role(role) as client:
            assert client.get("/metrics").status_code == status, role
    server = live(metrics_token=METRICS_TOKEN)
    with httpx.Client(base_url=server.base_url) as prometheus:
        samples = scrape(prometheus, Authorization=f"Bearer {METRICS_TOKEN}")
        assert value(samples, "shipboard_db_up") == 1
        wrong = prometheus.get("/metrics", headers={"Authorization": "Bearer not-the-token"})
        assert_problem(wrong, 401)


def test_a_real_prometheus_scrapes_shipboard_with_the_metrics_token(
    live: Any, prometheus: Any
) -> None:
    """Prometheus 2.42 scrapes /metrics with the token (its own `authorization` block): the
    target is up, and what Shipboard exposes is queryable from Prometheus' API."""
    server = live(metrics_token=METRICS_TOKEN)
    scraper = prometheus(
        "  - job_name: shipboard\n"
        "    scrape_interval: 1s\n"
        "    authorization:\n"
        f"      credentials: {METRICS_TOKEN}\n"
        "    static_configs:\n"
        f"      - targets: ['127.0.0.1:{server.port}']\n"
    )

    def target() -> dict[str, Any] | None:
        active = httpx.get(f"{scraper.url}/api/v1/targets").json()["data"]["activeTargets"]
        return next((t for t in active if t["health"] == "up"), None)

    up = wait_for(target, timeout=30, interval=0.5)
    assert up["labels"] == {"instance": f"127.0.0.1:{server.port}", "job": "shipboard"}
    assert up["lastError"] == ""

    def query(expression: str) -> list[Any]:
        answer = httpx.get(f"{scraper.url}/api/v1/query", params={"query": expression}).json()
        assert answer["status"] == "success", answer
        return list(answer["data"]["result"])

    (database,) = wait_for(lambda: query('shipboard_db_up{job="shipboard"}'), timeout=30)
    assert database["value"][1] == "1"
    assert wait_for(lambda: query("shipboard_http_requests_total"), timeout=30)
    # Prometheus judged the exposition valid: no sample was refused as malformed.
    assert query("scrape_samples_scraped")[0]["value"][1] != "0"


def test_the_metrics_token_scrapes_a_server_whose_database_is_down(live: Any) -> None:
    # The token needs no database, so Prometheus still learns that the database is down.
    server = live(
        "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2", metrics_token=METRICS_TOKEN
    )
    with httpx.Client(base_url=server.base_url) as prometheus:
        samples = scrape(prometheus, Authorization=f"Bearer {METRICS_TOKEN}")
    assert value(samples, "shipboard_db_up") == 0
    assert value(samples, "shipboard_metrics_collect_seconds") > 0


def test_scrape_time_stays_small(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        scrape(admin)
        took = []
        for _ in range(5):
            started = time.perf_counter()
            samples = scrape(admin)
            took.append(time.perf_counter() - started)
    collect_ms = value(samples, "shipboard_metrics_collect_seconds") * 1000
    print(f"scrape: median {sorted(took)[2] * 1000:.1f} ms, database part {collect_ms:.1f} ms")
    assert sorted(took)[2] < 0.5


# --- request ids in logs ------------------------------------------------------------------------


def test_request_id_is_in_the_response_and_every_log_line_of_the_request(tmp_path: Path) -> None:
    port = free_port()
    log_file = tmp_path / "stderr.log"
    env = {
        **os.environ,
        "SHIPBOARD_HOME": str(tmp_path / "home"),
        "SHIPBOARD_LOG_JSON": "true",
        "SHIPBOARD_LOG_LEVEL": "info",
    }
    env.pop("SHIPBOARD_DATABASE_URL", None)
    with log_file.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "shipboard", "serve", "--port", str(port), "--no-worker"],
            env=env,
            stderr=stderr,
            stdout=subprocess.DEVNULL,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _answers(f"{base}/healthz"), timeout=60)
        # The GitHub webhook logs a line of its own inside the request (signature missing).
        traced = httpx.post(
            f"{base}/api/v1/integrations/github",
            json={"zen": "x"},
            headers={"X-Request-ID": "lb-7f3a.42", "X-GitHub-Event": "ping"},
        )
        assert traced.status_code == 401
        assert traced.headers["x-request-id"] == "lb-7f3a.42"
        # An id that could forge log text is replaced by one of ours.
        forged = httpx.get(f"{base}/healthz", headers={"X-Request-ID": 'a" b'})
        own = forged.headers["x-request-id"]
        assert len(own) == 32
        assert int(own, 16) >= 0
        # uvicorn logs a malformed request through `logging`; it must come out as JSON too.
        with socket.create_connection(("127.0.0.1", port)) as raw:
            raw.sendall(b"NOT HTTP AT ALL\r\n\r\n")
            raw.recv(1024)
        time.sleep(0.3)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    events = [json.loads(line) for line in log_file.read_text().splitlines() if line[:1] == "{"]
    of_request = [e for e in events if e.get("request_id") == "lb-7f3a.42"]
    assert {e["event"] for e in of_request} >= {"webhook_rejected", "request_finished"}
    # No line about that request lacks its id.
    assert all(e.get("request_id") for e in events if e.get("event") == "webhook_rejected")
    assert all(
        e.get("request_id")
        for e in events
        if e.get("event") == "request_finished" and e.get("path") != "/healthz"
    )
    assert any(e.get("request_id") == own for e in events)
    assert any(e.get("logger") == "uvicorn.error" for e in events)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url).status_code == 200
    except httpx.TransportError:
        return False


# --- /readyz ------------------------------------------------------------------------------------


def test_readyz_fails_when_deployments_wait_without_a_worker_and_recovers(
    clients: Clients, engine: Engine, live: Any
) -> None:
    from shipboard.pipelines.worker import Worker, start_in_thread

    server = live(ready_queue_stall_s=1)
    with clients.as_role("admin") as admin:
        _set_pipeline(admin)
        did = start_deployment(admin, "staging", "3.0.0")
    ready = f"{server.base_url}/readyz"
    assert httpx.get(ready).status_code == 200  # it has not waited long yet
    time.sleep(1.2)
    body = assert_problem(httpx.get(ready), 503)
    assert "no worker" in str(body["detail"])
    thread, stop = start_in_thread(Worker(engine, server.app.state.keyring, poll_s=0.05, lease_s=5))
    try:
        wait_for(lambda: httpx.get(ready).status_code == 200)
        with clients.as_role("admin") as admin:
            assert admin.get(f"/api/v1/deployments/{did}").json()["status"] != "pending"
    finally:
        stop.set()
        thread.join(timeout=30)


def test_readyz_waits_for_approval_without_failing(
    clients: Clients, engine: Engine, live: Any
) -> None:
    server = live(ready_queue_stall_s=0.5)
    with clients.as_role("admin") as admin:
        _set_pipeline(admin)
        did = start_deployment(admin, "staging", "3.1.0")
    # A deployment waiting for a person is not waiting for a worker.
    with engine.begin() as conn:
        conn.execute(
            sa.update(DeploymentRun)
            .where(DeploymentRun.deployment_id == uuid.UUID(did))
            .values(needs_approval=True)
        )
    time.sleep(0.7)
    assert httpx.get(f"{server.base_url}/readyz").status_code == 200


def test_readyz_fails_when_an_in_process_worker_thread_has_stopped(
    engine: Engine, live: Any
) -> None:
    from shipboard.pipelines.worker import Worker, start_in_thread

    server = live()
    thread, stop = start_in_thread(Worker(engine, server.app.state.keyring, poll_s=0.05))
    server.app.state.background = {"pipeline worker": thread}
    ready = f"{server.base_url}/readyz"
    assert httpx.get(ready).status_code == 200
    stop.set()
    thread.join(timeout=30)
    body = assert_problem(httpx.get(ready), 503)
    assert "pipeline worker stopped" in str(body["detail"])
    with httpx.Client(base_url=server.base_url) as client:
        token = user_token(engine, "admin", f"ops-{uuid.uuid4().hex[:6]}")
        samples = scrape(client, Authorization=f"Bearer {token}")
    assert value(samples, "shipboard_background_thread_up", thread="pipeline worker") == 0


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_readyz_is_503_while_the_database_refuses_connections_and_200_after(
    databases: Any, live: Any
) -> None:
    from shipboard.db import migrate

    database = databases.new("postgres")
    migrate.upgrade(database.url)
    name = make_url(database.url).database
    server = live(database.url, metrics_token=METRICS_TOKEN)
    ready = f"{server.base_url}/readyz"
    assert httpx.get(ready).status_code == 200
    admin = sa.create_engine(
        make_url(PG_BASE_URL).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false'))
            conn.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            )
        down = httpx.get(ready)
        assert_problem(down, 503)
        assert down.headers["retry-after"]
        assert "database unreachable" in down.json()["detail"]
        with httpx.Client(base_url=server.base_url) as prometheus:
            samples = scrape(prometheus, Authorization=f"Bearer {METRICS_TOKEN}")
        assert value(samples, "shipboard_db_up") == 0
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true'))
        admin.dispose()
    wait_for(lambda: httpx.get(ready).status_code == 200, timeout=10)


def test_hsts_is_not_sent_over_plain_http(server: LiveServer) -> None:
    response = httpx.get(f"{server.base_url}/healthz")
    assert "strict-transport-security" not in response.headers
    assert response.headers["x-request-id"]


def test_unhandled_errors_keep_their_request_id(live: Any) -> None:
    server = live()

    def boom() -> None:
        raise RuntimeError("boom")

    server.app.add_api_route("/api/v1/boom-for-tests", boom, include_in_schema=False)
    with httpx.Client(base_url=server.base_url) as client:
        response = client.get("/api/v1/boom-for-tests", headers={"X-Request-ID": "err-1"})
    assert_problem(response, 500)
    assert response.headers["x-request-id"] == "err-1"


def test_each_connection_pool_is_in_metrics(clients: Clients, backend: str) -> None:
    """On PostgreSQL the requests on the event loop have a pool of their own (http/db.py):
    /metrics shows it beside the sync one, so a full pool of either is seen."""
    with clients.as_role("admin") as admin:
        assert admin.get("/api/v1/deployments").status_code == 200  # a request on the loop
        samples = scrape(admin)
    assert value(samples, "shipboard_db_pool_max", pool="sync") >= 1
    async_max = value(samples, "shipboard_db_pool_max", pool="async")
    if backend == "postgres":
        assert async_max == value(samples, "shipboard_db_pool_max", pool="sync")
        assert value(samples, "shipboard_db_pool_size", pool="async") >= 1
    else:
        assert async_max == 0  # SQLite reads inline on the sync engine: no second pool
