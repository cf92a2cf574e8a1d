"""Prometheus scraping, the monitoring report, and deployment events on notification channels."""

from __future__ import annotations

import csv
import io
import math
import random
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import Engine

from shipboard.alerting.models import Alert, AlertRule
from shipboard.alerting.tasks import evaluate
from shipboard.db.engine import transaction
from shipboard.monitoring import scrape
from shipboard.monitoring.schemas import MonitoringMetricCreate
from shipboard.monitoring.service import ingest_metrics
from shipboard.monitoring.tasks import Scraper
from shipboard.notifications.delivery import send_due
from tests.support.factories import create_channel
from tests.support.live import Clients, Receiver, free_port
from tests.support.paths import FIXTURES as FIXTURES_ROOT
from tests.support.problems import assert_problem


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
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    dead = free_port()
    try:
        _scrape(
            clients,
            "staging",
            {"url": f"http://127.0.0.1:{port}/metrics", "interval_s": 60, "labels": {"job": "app"}},
            {"url": f"http://127.0.0.1:{dead}/metrics", "interval_s": 60},
        )
        scraper = Scraper(engine)
        assert scraper.scrape_due() == 2
        scraper.finish()
        assert scraper.scrape_due() == 0  # not due again before its interval
    finally:
        server.shutdown()
    ((depth, tags),) = _values(engine, "queue_depth")
    assert depth == 7
    assert tags == {"job": "app", "instance": f"127.0.0.1:{port}", "queue": "emails"}
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
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # accepts into the backlog; nobody ever reads or answers
    hung = f"http://127.0.0.1:{silent.getsockname()[1]}/metrics"
    try:
        _scrape(
            clients,
            "development",
            {"url": hung, "interval_s": 1},
            {"url": f"http://127.0.0.1:{port}/metrics", "interval_s": 1},
        )
        scraper = Scraper(engine)
        started = time.monotonic()
        assert scraper.scrape_due() == 2
        assert time.monotonic() - started < 2
        deadline = time.monotonic() + 5
        while not _values(engine, "healthy_gauge") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _values(engine, "healthy_gauge"), "the healthy target waited for the hung one"
        evaluate(engine)
        assert time.monotonic() - started < 5
        # Both are due again (the shortest interval allowed is 1 s); only the healthy one is not
        # still in flight.
        time.sleep(max(0.0, started + 1.1 - time.monotonic()))
        assert scraper.scrape_due() == 1
        scraper.finish(timeout=20)
        down = {t["scrape_target"]: v for v, t in _values(engine, "shipboard_scrape_up")}
        assert down[hung] == 0.0
        assert time.monotonic() - started >= 9  # the hung fetch ran to its timeout
    finally:
        silent.close()
        server.shutdown()


def _scrape_now(clients: Clients, engine: Engine) -> None:
    scraper = Scraper(engine)
    assert scraper.scrape_due() > 0
    scraper.finish(timeout=30)


def test_two_real_prometheus_servers_exposing_the_same_series_stay_apart(
    clients: Clients, engine: Engine, prometheus: Any
) -> None:
    """Each sample gets the target's `instance` (host:port) and `job`, as Prometheus adds them,
    so the same series from two targets are two series."""
    first, second = prometheus(), prometheus()
    _scrape(
        clients,
        "staging",
        {"url": f"{first.url}/metrics", "job": "prometheus"},
        {"url": f"{second.url}/metrics", "job": "prometheus"},
    )
    _scrape_now(clients, engine)
    build = _values(engine, "prometheus_build_info")
    instances = sorted(tags["instance"] for _, tags in build)
    assert instances == sorted([f"127.0.0.1:{first.port}", f"127.0.0.1:{second.port}"])
    assert {tags["job"] for _, tags in build} == {"prometheus"}
    assert {tags["version"] for _, tags in build} == {first.version()}
    up = {tags["instance"]: value for value, tags in _values(engine, "shipboard_scrape_up")}
    assert up == {f"127.0.0.1:{first.port}": 1.0, f"127.0.0.1:{second.port}": 1.0}
    with clients.as_role("viewer") as viewer:
        one = viewer.get(
            "/api/v1/metrics/series",
            params={
                "name": "prometheus_build_info",
                "environment": "staging",
                "agg": "count",
                "tag.instance": f"127.0.0.1:{first.port}",
            },
        )
    assert [value for _, value in one.json()["points"]] == [1.0]


def test_sample_labels_that_clash_with_target_labels_become_exported_unless_honored(
    clients: Clients, engine: Engine
) -> None:
    registry = CollectorRegistry()
    clash = Gauge(
        "clash", "labels a target sets too", ["job", "instance", "team"], registry=registry
    )
    clash.labels(job="from-app", instance="pod-7", team="red").set(1)
    port = free_port()
    server, _thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        _scrape(
            clients,
            "development",
            {"url": f"http://127.0.0.1:{port}/metrics", "job": "app", "labels": {"team": "blue"}},
            {"url": f"http://127.0.0.1:{port}/honored", "job": "app", "honor_labels": True},
        )
        _scrape_now(clients, engine)
    finally:
        server.shutdown()
    stored = [tags for _, tags in _values(engine, "clash")]
    assert len(stored) == 2
    (default,) = [tags for tags in stored if tags["job"] == "app"]
    (honored,) = [tags for tags in stored if tags["job"] == "from-app"]
    assert default["instance"] == f"127.0.0.1:{port}"
    assert default["team"] == "blue"
    assert default["exported_job"] == "from-app"
    assert default["exported_instance"] == "pod-7"
    assert default["exported_team"] == "red"
    assert honored["instance"] == "pod-7"
    assert honored["team"] == "red"
    assert "exported_job" not in honored


@pytest.mark.parametrize(
    "target",
    [
        {"url": "http://127.0.0.1:9/metrics", "honor_labels": "yes"},
        {"url": "http://127.0.0.1:9/metrics", "job": 7},
        {"url": "http://127.0.0.1:9/metrics", "labels": {"bad-name": "x"}},
        {"url": "http://127.0.0.1:9/metrics", "interval_s": 0},
        {"honor_labels": False},
    ],
)
def test_an_invalid_scrape_target_is_refused_on_write(
    clients: Clients, target: dict[str, Any]
) -> None:
    with clients.as_role("admin") as admin:
        response = admin.patch(
            "/api/v1/environments/staging",
            json={"config": {"monitoring": {"scrape": [target]}}},
        )
    body = assert_problem(response, 422)
    assert any(
        error["loc"][:5] == ["body", "config", "monitoring", "scrape", 0]
        for error in body["errors"]  # type: ignore[union-attr]
    ), body


PROM_TEXT = FIXTURES_ROOT / "metrics" / "prometheus-text"


class _Exposition(BaseHTTPRequestHandler):
    """Serves one file as a Prometheus target would; counts the bytes it sent."""

    body = b""
    repeat = 1
    sent = 0

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        try:
            for _ in range(type(self).repeat):
                self.wfile.write(type(self).body)
                type(self).sent += len(type(self).body)
        except OSError:
            pass  # the scraper hung up

    def log_message(self, *args: Any) -> None:
        pass


def _serve(body: bytes, repeat: int = 1) -> tuple[HTTPServer, type[_Exposition]]:
    handler = type("Handler", (_Exposition,), {"body": body, "repeat": repeat, "sent": 0})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, handler


@pytest.mark.parametrize(
    "fixture",
    [
        "prometheus-common_expfmt_testdata_text.prom",
        "prometheus-common_expfmt_fuzz_from_test_parse_2.prom",
    ],
)
def test_nan_and_infinite_samples_are_counted_as_dropped(
    clients: Clients, engine: Engine, fixture: str
) -> None:
    """NaN and ±Inf cannot be stored alike on both backends (SQLite stores NaN as NULL) nor sent
    in JSON: they are left out and counted by reason; every other sample is stored."""
    text = (PROM_TEXT / fixture).read_text()
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
    server, _handler = _serve(text.encode())
    try:
        _scrape(clients, "staging", {"url": f"http://127.0.0.1:{server.server_port}/metrics"})
        _scrape_now(clients, engine)
    finally:
        server.shutdown()
    dropped = {t["reason"]: v for v, t in _values(engine, "shipboard_scrape_samples_dropped")}
    expected = {
        "nan": sum(math.isnan(s.value) for s in samples),
        "inf": sum(math.isinf(s.value) for s in samples),
    }
    assert dropped == {reason: float(n) for reason, n in expected.items()}
    (stored,) = [v for v, _ in _values(engine, "shipboard_scrape_samples")]
    assert stored == len(samples) - sum(expected.values())
    if fixture.endswith("parse_2.prom"):
        assert expected == {"nan": 1, "inf": 2}
        assert [v for v, _ in _values(engine, "name2")] == []
        # A counter exposed without `_total` keeps its name, as Prometheus stores it.
        assert [v for v, _ in _values(engine, "name")] == [0.23]
        assert _values(engine, "name_total") == []
    else:
        assert {v for v, _ in _values(engine, "http_requests_total")}


def test_a_live_prometheus_scrape_stores_or_counts_every_sample(
    clients: Clients, engine: Engine, prometheus: Any
) -> None:
    server = prometheus()

    def samples() -> list[Any]:
        text = httpx.get(f"{server.url}/metrics").text
        return [s for f in text_string_to_metric_families(text) for s in f.samples]

    before = samples()
    _scrape(clients, "staging", {"url": f"{server.url}/metrics", "job": "prometheus"})
    _scrape_now(clients, engine)
    after = samples()
    (stored,) = [v for v, _ in _values(engine, "shipboard_scrape_samples")]
    dropped = {t["reason"]: v for v, t in _values(engine, "shipboard_scrape_samples_dropped")}
    # Prometheus adds series as it is scraped (its handler's own); ours lies between the reads.
    assert len(before) <= stored + sum(dropped.values()) <= len(after)
    assert dropped["nan"] == pytest.approx(sum(math.isnan(s.value) for s in after), abs=5)
    assert dropped["nan"] > 0  # quantiles of summaries that observed nothing yet


def test_a_huge_scrape_body_is_read_only_up_to_the_limit(clients: Clients, engine: Engine) -> None:
    """The body is streamed and the fetch stops at the limit: of a 300 MB answer the scraper reads
    at most limit + one chunk, and the target gets to send little more than that."""
    line = b"# " + b"x" * 1021 + b"\n"
    server, handler = _serve(line, repeat=300 * 1024)  # 300 MB
    limit = 1024 * 1024
    try:
        url = f"http://127.0.0.1:{server.server_port}/m"
        with httpx.Client(timeout=10) as client, pytest.raises(scrape.TooLarge) as too_large:
            scrape.fetch(client, url, max_bytes=limit)
        assert too_large.value.read <= limit + scrape.CHUNK
        target = scrape.Target("staging", f"http://127.0.0.1:{server.server_port}/m", 60, {})
        started = time.monotonic()
        rows = scrape.scrape(target, max_bytes=limit)
        elapsed = time.monotonic() - started
    finally:
        server.shutdown()
    assert [(r["name"], r["value"]) for r in rows] == [("shipboard_scrape_up", 0.0)]
    # What the target wrote before the scraper hung up: the limit plus the sockets' buffers.
    assert handler.sent < limit + 16 * 1024 * 1024, handler.sent
    assert elapsed < 5


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
            create_channel(admin, "deploys", receiver.url)
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
        send_due(engine, clients.server.app.state.keyring)
        events: list[Any] = [p["event"] for p in receiver.payloads()]
    finally:
        receiver.server.shutdown()
    assert events == ["deployment.blocked", "deployment.started", "deployment.failed"]
    assert "deploy_freeze" in receiver.payloads()[0]["message"]
    assert receiver.payloads()[2]["deployment"]["error_message"] == "boom"
