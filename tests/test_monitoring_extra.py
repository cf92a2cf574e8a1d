"""Prometheus scraping, the monitoring report, and deployment events on notification channels."""

from __future__ import annotations

import csv
import io
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from sqlalchemy.engine import Engine

from shipboard.db.engine import transaction
from shipboard.monitoring.models import Alert, AlertRule
from shipboard.monitoring.scheduler import Scheduler
from shipboard.monitoring.schemas import MonitoringMetricCreate
from shipboard.monitoring.service import ingest_metrics
from shipboard.notifications import service as notifications
from tests.conftest import Clients, _free_port
from tests.test_alerting import Receiver, _channel
from tests.test_api import assert_problem


def _values(engine: Engine, name: str) -> list[tuple[float, dict[str, str]]]:
    import json

    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT value, tags FROM monitoring_metrics WHERE name = :n"), {"n": name}
        ).all()
    return [(float(v), t if isinstance(t, dict) else json.loads(t)) for v, t in rows]


def _scrape(clients: Clients, environment: str, *targets: dict[str, Any]) -> None:
    """Set an environment's Prometheus scrape targets through the API."""
    with clients.as_role("admin") as admin:
        response = admin.patch(
            f"/api/v1/environments/{environment}",
            json={"config": {"monitoring": {"scrape": list(targets)}}},
        )
        assert response.status_code == 200, response.text


def test_scrapes_a_real_prometheus_client_server_and_survives_a_dead_target(
    clients: Clients, engine: Engine
) -> None:
    registry = CollectorRegistry()
    Gauge("queue_depth", "jobs waiting", ["queue"], registry=registry).labels(queue="emails").set(7)
    Counter("orders", "orders placed", registry=registry).inc(3)
    port = _free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    dead = _free_port()
    try:
        _scrape(
            clients,
            "staging",
            {"url": f"http://127.0.0.1:{port}/metrics", "interval_s": 60, "labels": {"job": "app"}},
            {"url": f"http://127.0.0.1:{dead}/metrics", "interval_s": 60},
        )
        scheduler = Scheduler(engine, clients.server.app.state.keyring)
        assert scheduler.scrape_due() == 2
        scheduler.finish_scrapes()
        assert scheduler.scrape_due() == 0  # not due again before its interval
    finally:
        server.shutdown()
    ((depth, tags),) = _values(engine, "queue_depth")
    assert depth == 7
    assert tags == {"job": "app", "queue": "emails"}
    assert _values(engine, "orders_total")[0][0] == 3
    up = {t["scrape_target"]: v for v, t in _values(engine, "shipboard_scrape_up")}
    assert up == {f"http://127.0.0.1:{port}/metrics": 1.0, f"http://127.0.0.1:{dead}/metrics": 0.0}


def test_a_hanging_scrape_target_holds_up_nothing(clients: Clients, engine: Engine) -> None:
    """A target that accepts and never answers: scrape_due returns at once, the healthy
    target's samples arrive, alert evaluation runs, and the hung target is not fetched twice
    at the same time; it is recorded down when its 10-second timeout ends."""
    import socket
    import time

    registry = CollectorRegistry()
    Gauge("healthy_gauge", "a value", registry=registry).set(1)
    port = _free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts into the backlog; nobody ever reads or answers
    hung = f"http://127.0.0.1:{silent.getsockname()[1]}/metrics"
    try:
        _scrape(
            clients,
            "development",
            {"url": hung, "interval_s": 0.1},
            {"url": f"http://127.0.0.1:{port}/metrics", "interval_s": 0.1},
        )
        scheduler = Scheduler(engine, clients.server.app.state.keyring)
        started = time.monotonic()
        assert scheduler.scrape_due() == 2
        assert time.monotonic() - started < 2
        deadline = time.monotonic() + 5
        while not _values(engine, "healthy_gauge") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _values(engine, "healthy_gauge"), "the healthy target waited for the hung one"
        scheduler.evaluate()
        assert time.monotonic() - started < 5
        time.sleep(0.2)  # both are due again; only the healthy one is not still in flight
        assert scheduler.scrape_due() == 1
        scheduler.finish_scrapes(timeout=20)
        down = {t["scrape_target"]: v for v, t in _values(engine, "shipboard_scrape_up")}
        assert down[hung] == 0.0
        assert time.monotonic() - started >= 9  # the hung fetch ran to its timeout
    finally:
        silent.close()
        server.shutdown()


def test_monitoring_report_trend_anomalies_and_alert_times(
    clients: Clients, engine: Engine
) -> None:
    rng = random.Random(5)
    now = datetime.now(UTC)
    points = []
    for hour in range(24 * 6):
        at = now - timedelta(days=6) + timedelta(hours=hour)
        points.append(
            MonitoringMetricCreate(
                name="latency_ms",
                value=100 + hour * 0.5 + rng.gauss(0, 2),
                timestamp=at,
                environment="production",
                source="application",
            )
        )
        points.append(
            MonitoringMetricCreate(
                name="cpu",
                value=50 + rng.gauss(0, 1) + (40 if hour == 70 else 0),
                timestamp=at,
                environment="production",
                source="infrastructure",
            )
        )
    with transaction(engine) as session:
        ingest_metrics(session, metrics=points)
        rule = AlertRule(
            id=uuid.uuid4(),
            name="Slow",
            kind="threshold",
            environment="production",
            metric="latency_ms",
            spec={"window_s": 60, "agg": "avg", "op": ">", "value": 1},
            severity="high",
            labels={},
            annotations={},
            channels=[],
            enabled=True,
            created_at=now,
            updated_at=now,
        )
        session.add(rule)
        session.flush()
        for i, minutes in enumerate((10, 30)):
            start = now - timedelta(days=1, hours=i)
            session.add(
                Alert(
                    id=uuid.uuid4(),
                    rule_id=rule.id,
                    fingerprint=f"f{i}",
                    state="resolved",
                    starts_at=start,
                    ends_at=start + timedelta(minutes=minutes),
                    labels={},
                    annotations={},
                    transitions=[],
                    updated_at=now,
                )
            )
    with clients.as_role("viewer") as viewer:
        report = viewer.get(
            "/api/v1/reports/monitoring", params={"environment": "production", "period": "7d"}
        ).json()
        as_csv = viewer.get(
            "/api/v1/reports/monitoring", params={"environment": "production", "format": "csv"}
        )
        assert_problem(
            viewer.get(
                "/api/v1/reports/monitoring", params={"environment": "production", "period": "soon"}
            ),
            422,
        )
    metrics = {m["name"]: m for m in report["metrics"]}
    assert metrics["latency_ms"]["trend"] == "rising"
    assert metrics["latency_ms"]["trend_per_day"] == pytest.approx(12, rel=0.1)
    assert metrics["cpu"]["trend"] == "flat"
    assert metrics["cpu"]["anomalies"] == 1
    assert report["alerts"]["fired"] == 2
    assert report["alerts"]["mean_time_to_resolve_s"] == pytest.approx(1200)
    assert report["alerts"]["median_time_to_resolve_s"] == pytest.approx(1200)
    rows = list(csv.DictReader(io.StringIO(as_csv.text)))
    assert {r["name"] for r in rows} == {"cpu", "latency_ms"}


def test_deployment_events_and_gate_blocks_reach_the_environments_channels(
    clients: Clients, engine: Engine
) -> None:
    receiver = Receiver()
    try:
        with clients.as_role("admin") as admin:
            _channel(admin, "deploys", receiver.url)
            admin.patch(
                "/api/v1/environments/development",
                json={"config": {"notification_channels": ["deploys"]}},
            )
            admin.put(
                "/api/v1/environments/development/features/deploy_freeze", json={"enabled": True}
            )
            blocked = admin.post(
                "/api/v1/deployments",
                json={"environment": "development", "version": "1", "commit_sha": "abcdef1"},
            )
            assert blocked.status_code == 422
            admin.put(
                "/api/v1/environments/development/features/deploy_freeze", json={"enabled": False}
            )
            did = admin.post(
                "/api/v1/deployments",
                json={"environment": "development", "version": "1", "commit_sha": "abcdef1"},
            ).json()["id"]
            for status in ("building", "deploying"):
                admin.post(f"/api/v1/deployments/{did}/status", json={"status": status})
            admin.post(
                f"/api/v1/deployments/{did}/status",
                json={"status": "failed", "error_message": "boom"},
            )
        notifications.send_due(engine, clients.server.app.state.keyring)
        events: list[Any] = [p["event"] for p in receiver.payloads()]
    finally:
        receiver.server.shutdown()
    assert events == ["deployment.blocked", "deployment.started", "deployment.failed"]
    assert "deploy_freeze" in receiver.payloads()[0]["message"]
    assert receiver.payloads()[2]["deployment"]["error_message"] == "boom"
