"""Metric ingest (REST and OTLP), series and names, against a live server."""

from __future__ import annotations

import gzip
import json
import math
import random
import statistics
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from google.protobuf import json_format
from google.rpc.status_pb2 import Status
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from sqlalchemy.engine import Engine

from shipboard.monitoring.otlp import histogram_quantile
from shipboard.monitoring.series import bucket, default_step, percentile
from tests.support.live import Clients
from tests.support.paths import FIXTURES as FIXTURES_ROOT
from tests.support.problems import assert_problem

FIXTURES = FIXTURES_ROOT / "metrics" / "otlp"
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
PROTOBUF = "application/x-protobuf"


def _point(i: int = 0, **overrides: Any) -> dict[str, Any]:
    return {
        "name": "http_request_duration_ms",
        "value": float(i),
        "timestamp": (T0 + timedelta(seconds=i)).isoformat(),
        "environment": "staging",
        "tags": {"route": "/"},
        "source": "application",
        **overrides,
    }


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM monitoring_metrics")).scalar_one())


def test_batch_ingest_and_atomicity(clients: Clients, engine: Engine) -> None:
    with clients.as_role("service") as client:
        ok = client.post("/api/v1/metrics", json={"metrics": [_point(i) for i in range(100)]})
        assert ok.json() == {"accepted": 100}
        bad = client.post(
            "/api/v1/metrics",
            json={"metrics": [_point(1), _point(2, value="NaN"), _point(3, name="9bad")]},
        )
        body = assert_problem(bad, 422)
        locs = {tuple(e["loc"][:3]) for e in body["errors"]}  # type: ignore[union-attr]
        assert locs == {("body", "metrics", 1), ("body", "metrics", 2)}
        future = client.post(
            "/api/v1/metrics",
            json={
                "metrics": [
                    _point(1),
                    _point(2, timestamp=(datetime.now(UTC) + timedelta(minutes=11)).isoformat()),
                ]
            },
        )
        body = assert_problem(future, 422)
        assert body["errors"][0]["loc"] == ["body", "metrics", 1, "timestamp"]  # type: ignore[index]
        unknown = client.post(
            "/api/v1/metrics", json={"metrics": [_point(1), _point(2, tags={"a": 1})]}
        )
        assert_problem(unknown, 422)
    assert _count(engine) == 100
    with clients.as_role("viewer") as viewer:
        assert_problem(viewer.post("/api/v1/metrics", json={"metrics": [_point(1)]}), 403)


def test_more_than_ten_thousand_points_is_413(clients: Clients, engine: Engine) -> None:
    with clients.as_role("service") as client:
        response = client.post(
            "/api/v1/metrics", json={"metrics": [_point(i % 60) for i in range(10_001)]}
        )
    assert_problem(response, 413)
    assert _count(engine) == 0


def test_idempotent_retry_is_stored_once(clients: Clients, engine: Engine) -> None:
    key = str(uuid.uuid4())
    batch = {"metrics": [_point(i) for i in range(10)]}
    with clients.as_role("service") as client:
        first = client.post("/api/v1/metrics", json=batch, headers={"Idempotency-Key": key})
        again = client.post("/api/v1/metrics", json=batch, headers={"Idempotency-Key": key})
        other = client.post(
            "/api/v1/metrics", json={"metrics": [_point(99)]}, headers={"Idempotency-Key": key}
        )
        fresh = client.post("/api/v1/metrics", json=batch, headers={"Idempotency-Key": key + "-2"})
    assert first.json() == again.json() == {"accepted": 10}
    assert_problem(other, 409)
    assert fresh.status_code == 200
    assert _count(engine) == 20


def test_series_buckets_and_every_aggregation_match_a_computed_truth(clients: Clients) -> None:
    rng = random.Random(3)
    values = [rng.uniform(0, 100) for _ in range(600)]
    points = [
        _point(i, value=v, tags={"route": "/a" if i % 2 else "/b"}) for i, v in enumerate(values)
    ]
    with clients.as_role("service") as client:
        assert client.post("/api/v1/metrics", json={"metrics": points}).status_code == 200
    since, until = T0, T0 + timedelta(seconds=600)
    expected_route_a = {}
    for i, v in enumerate(values):
        if i % 2:
            expected_route_a.setdefault(i // 60, []).append(v)
    truths = {
        "avg": statistics.fmean,
        "min": min,
        "max": max,
        "sum": math.fsum,
        "count": len,
        "p50": percentile(0.5),
        "p95": percentile(0.95),
        "p99": percentile(0.99),
    }
    with clients.as_role("viewer") as viewer:
        for agg, truth in truths.items():
            body = viewer.get(
                "/api/v1/metrics/series",
                params={
                    "name": "http_request_duration_ms",
                    "environment": "staging",
                    "since": since.isoformat(),
                    "until": until.isoformat(),
                    "step": 60,
                    "agg": agg,
                    "tag.route": "/a",
                },
            ).json()
            assert len(body["points"]) == 10
            for (stamp, value), (index, group) in zip(
                body["points"], sorted(expected_route_a.items()), strict=True
            ):
                assert datetime.fromisoformat(stamp) == since + timedelta(seconds=60 * index)
                assert value == pytest.approx(truth(group)), agg
        default = viewer.get(
            "/api/v1/metrics/series",
            params={
                "name": "http_request_duration_ms",
                "since": since.isoformat(),
                "until": until.isoformat(),
            },
        ).json()
        assert default["step_s"] == 1
        assert len(default["points"]) == 600
        assert_problem(
            viewer.get("/api/v1/metrics/series", params={"name": "x", "agg": "median"}), 422
        )
        assert_problem(
            viewer.get(
                "/api/v1/metrics/series", params={"name": "x", "since": "2026-01-01T00:00:00"}
            ),
            422,
        )


def test_pure_bucketing_and_default_step() -> None:
    pts = [(T0 + timedelta(seconds=s), float(s)) for s in (0, 1, 59, 60, 61, 200)]
    out = bucket(pts, since=T0, until=T0 + timedelta(seconds=120), step_s=60, agg="sum")
    assert out == [(T0, 60.0), (T0 + timedelta(seconds=60), 121.0)]
    assert default_step(T0, T0 + timedelta(days=1)) == 87
    assert percentile(0.5)([1, 2, 3, 4]) == 2.5


def test_names_list_sources_and_tag_keys(clients: Clients) -> None:
    with clients.as_role("service") as client:
        client.post(
            "/api/v1/metrics",
            json={
                "metrics": [
                    _point(1),
                    _point(2, source="infrastructure", tags={"host": "a"}),
                    _point(3, name="cpu", tags={}),
                ]
            },
        )
    with clients.as_role("viewer") as viewer:
        items = viewer.get("/api/v1/metrics/names", params={"environment": "staging"}).json()[
            "items"
        ]
    assert items == [
        {"name": "cpu", "sources": ["application"], "tag_keys": [], "points": 1},
        {
            "name": "http_request_duration_ms",
            "sources": ["application", "infrastructure"],
            "tag_keys": ["host", "route"],
            "points": 2,
        },
    ]


def test_histogram_quantile_estimates() -> None:
    # 10 in (0, 1], 80 in (1, 2], 10 in (2, +Inf)
    assert histogram_quantile(0.5, [1, 2], [10, 80, 10]) == pytest.approx(1.5)
    assert histogram_quantile(0.05, [1, 2], [10, 80, 10]) == pytest.approx(0.5)
    assert histogram_quantile(0.99, [1, 2], [10, 80, 10]) == 2
    assert histogram_quantile(0.5, [1], [0, 0]) is None


def _with_environment(request: dict[str, Any], environment: str) -> dict[str, Any]:
    copy = json.loads(json.dumps(request))
    for resource_metrics in copy["resourceMetrics"]:
        resource_metrics.setdefault("resource", {}).setdefault("attributes", []).append(
            {"key": "deployment.environment.name", "value": {"stringValue": environment}}
        )
    return copy


def _rows(engine: Engine) -> dict[str, tuple[float, dict[str, str], str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT name, value, tags, environment FROM monitoring_metrics")
        ).all()
    return {
        r[0]: (float(r[1]), r[2] if isinstance(r[2], dict) else json.loads(r[2]), r[3])
        for r in rows
    }


@pytest.mark.parametrize(
    "fixture",
    [
        "opentelemetry-proto_examples_metrics.json",
        "opentelemetry-proto_examples_metrics@c269bbe_uint64-as-numbers.json",
    ],
)
def test_otlp_json_fixture(clients: Clients, engine: Engine, fixture: str) -> None:
    request = _with_environment(json.loads((FIXTURES / fixture).read_text()), "production")
    with clients.as_role("service") as client:
        response = client.post("/v1/metrics", json=request)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {}
    rows = _rows(engine)
    assert rows["my.counter"][0] == 5
    assert rows["my.counter"][1]["otel.monotonic"] == "true"
    # Exponential buckets at scale 0: one value in the zero bucket, two in (4, 8].
    assert rows["my.exponential.histogram_p50"][0] == 5.0
    assert rows["my.histogram_p50"][0] == 1.0
    assert rows["my.counter"][1]["service.name"] == "my.service"
    assert rows["my.gauge"][0] == 10
    assert rows["my.histogram_count"][0] == 2
    assert rows["my.exponential.histogram_count"][0] == 3
    assert all(env == "production" for _, _, env in rows.values())


def test_a_malformed_histogram_point_is_rejected_and_the_rest_of_the_request_stored(
    clients: Clients, engine: Engine
) -> None:
    """OTLP partial success: a histogram point whose bucket_counts has more entries than
    explicit_bounds + 1 is refused with a reason; the other points of the request are stored."""
    request = _with_environment(
        json.loads((FIXTURES / "opentelemetry-proto_examples_metrics.json").read_text()), "staging"
    )
    metrics = request["resourceMetrics"][0]["scopeMetrics"][0]["metrics"]
    histogram = next(m for m in metrics if m["name"] == "my.histogram")
    good = histogram["histogram"]["dataPoints"][0]
    bad = {**good, "bucketCounts": ["0", "1", "1"], "count": "2"}
    histogram["histogram"]["dataPoints"] = [bad, good]
    with clients.as_role("service") as client:
        response = client.post("/v1/metrics", json=request)
        assert response.status_code == 200, response.text
        partial = response.json()["partialSuccess"]
        assert partial["rejectedDataPoints"] == "1"
        assert "my.histogram" in partial["errorMessage"]
        assert "bucket_counts" in partial["errorMessage"]
        protobuf = ExportMetricsServiceRequest()
        json_format.ParseDict(request, protobuf)
        binary = client.post(
            "/v1/metrics",
            content=protobuf.SerializeToString(),
            headers={"Content-Type": "application/x-protobuf"},
        )
    assert binary.status_code == 200, binary.text
    answer = ExportMetricsServiceResponse.FromString(binary.content)
    assert answer.partial_success.rejected_data_points == 1
    rows = _rows(engine)
    kept = {"my.counter", "my.gauge", "my.histogram_count", "my.exponential.histogram_count"}
    assert kept <= set(rows)
    with engine.connect() as conn:
        counts = conn.execute(
            sa.text("SELECT count(*) FROM monitoring_metrics WHERE name = 'my.histogram_count'")
        ).scalar_one()
    assert counts == 2  # the good point, once from each request


def test_otlp_enum_by_name_gzip_and_partial_success(clients: Clients, engine: Engine) -> None:
    enum_text = json.loads(
        (FIXTURES / "opentelemetry.io_php-sdk_sum_enum-as-string.json").read_text()
    )
    request = _with_environment(enum_text, "staging")
    with clients.as_role("service") as client:
        response = client.post(
            "/v1/metrics",
            content=gzip.compress(json.dumps(request).encode()),
            headers={"Content-Type": "application/json", "Content-Encoding": "gzip"},
        )
        assert response.status_code == 200, response.text
        unknown = client.post("/v1/metrics", json=_with_environment(enum_text, "qa"))
        missing = client.post("/v1/metrics", json=enum_text)
        garbage = client.post(
            "/v1/metrics",
            content=b"\x00\xff nope",
            headers={"Content-Type": "application/x-protobuf"},
        )
        wrong_type = client.post(
            "/v1/metrics", content=b"x", headers={"Content-Type": "text/plain"}
        )
    assert _rows(engine)["queued"][0] == 6
    assert unknown.json()["partialSuccess"]["rejectedDataPoints"] == "1"
    assert "unknown environment 'qa'" in unknown.json()["partialSuccess"]["errorMessage"]
    assert "deployment.environment.name" in missing.json()["partialSuccess"]["errorMessage"]
    assert garbage.status_code == 400
    assert Status.FromString(garbage.content).code == 3  # INVALID_ARGUMENT
    assert wrong_type.status_code == 415
    assert "Content-Type must be" in wrong_type.json()["message"]


def test_otlp_errors_are_a_status_in_the_requests_encoding(clients: Clients) -> None:
    """OTLP/HTTP: the body of a 4xx is a google.rpc.Status, protobuf-encoded for a protobuf
    request and JSON for a JSON one, whichever layer refused it (route, auth, body limit)."""
    bomb = gzip.compress(b"\x00" * (80 * 1024 * 1024))
    with clients.as_role("service") as client:
        garbage = client.post(
            "/v1/metrics", content=b"\x00\xff nope", headers={"Content-Type": PROTOBUF}
        )
        bad_json = client.post(
            "/v1/metrics", content=b"{nope", headers={"Content-Type": "application/json"}
        )
        too_big = client.post(
            "/v1/metrics",
            content=bomb,
            headers={"Content-Type": PROTOBUF, "Content-Encoding": "gzip"},
        )
    with clients.as_role(None) as anonymous:
        no_token = anonymous.post("/v1/metrics", content=b"", headers={"Content-Type": PROTOBUF})
        no_token_json = anonymous.post("/v1/metrics", json={})
    with clients.as_role("viewer") as viewer:
        forbidden = viewer.post("/v1/metrics", content=b"", headers={"Content-Type": PROTOBUF})
    for response, status, code in (
        (garbage, 400, 3),  # INVALID_ARGUMENT
        (too_big, 413, 8),  # RESOURCE_EXHAUSTED
        (no_token, 401, 16),  # UNAUTHENTICATED
        (forbidden, 403, 7),  # PERMISSION_DENIED
    ):
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == PROTOBUF
        answer = Status.FromString(response.content)
        assert answer.code == code
        assert answer.message
    assert "cannot decode" in Status.FromString(garbage.content).message
    assert no_token.headers.get("www-authenticate", "").startswith("Bearer")
    for response, status, code in ((bad_json, 400, 3), (no_token_json, 401, 16)):
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert set(body) == {"code", "message", "details"}
        assert body["code"] == code
        assert body["message"]
        assert body["details"] == []


def test_otlp_environment_names_match_ignoring_case_as_webhooks_do(
    clients: Clients, engine: Engine
) -> None:
    """`Staging` is staging, as it is for a GitHub or GitLab webhook; an unknown name is not."""
    from shipboard.integrations import mapping

    example = json.loads((FIXTURES / "opentelemetry-proto_examples_metrics.json").read_text())
    with clients.as_role("service") as client:
        staging = client.post("/v1/metrics", json=_with_environment(example, "Staging"))
        production = client.post("/v1/metrics", json=_with_environment(example, "PRODUCTION"))
        unknown = client.post("/v1/metrics", json=_with_environment(example, "Stage"))
    assert staging.json() == {}, staging.text
    assert production.json() == {}, production.text
    assert unknown.json()["partialSuccess"]["rejectedDataPoints"] == "4"
    with engine.connect() as conn:
        environments = dict(
            conn.execute(
                sa.text(
                    "SELECT environment, count(*) FROM monitoring_metrics"
                    " WHERE name = 'my.gauge' GROUP BY environment"
                )
            ).all()
        )
    assert environments == {"staging": 1, "production": 1}
    webhook = mapping.Settings(
        environments=frozenset({"development", "staging", "production"}), env_map={}
    )
    assert mapping.map_environment("Staging", webhook) == "staging"
    assert mapping.map_environment("Stage", webhook) is None


def test_otlp_ndjson_lines_are_separate_requests(clients: Clients, engine: Engine) -> None:
    lines = (FIXTURES / "opentelemetry.io_php-sdk_gauge.ndjson").read_text().splitlines()
    with clients.as_role("service") as client:
        for line in lines:
            if line.strip():
                response = client.post(
                    "/v1/metrics", json=_with_environment(json.loads(line), "staging")
                )
                assert response.status_code == 200, response.text
    with engine.connect() as conn:
        values = sorted(
            conn.execute(
                sa.text("SELECT value FROM monitoring_metrics WHERE name = 'queued'")
            ).scalars()
        )
    assert [float(v) for v in values] == [2.0, 3.0]


def test_otlp_gzip_bomb_is_refused(clients: Clients, engine: Engine) -> None:
    bomb = gzip.compress(b"\x00" * (80 * 1024 * 1024))
    with clients.as_role("service") as client:
        response = client.post(
            "/v1/metrics",
            content=bomb,
            headers={"Content-Type": "application/x-protobuf", "Content-Encoding": "gzip"},
        )
    assert response.status_code == 413
    assert Status.FromString(response.content).code == 8  # RESOURCE_EXHAUSTED
    assert _count(engine) == 0


def test_real_opentelemetry_sdk_exporter(clients: Clients, engine: Engine) -> None:
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    exporter = OTLPMetricExporter(
        endpoint=f"{clients.server.base_url}/v1/metrics",
        headers={"Authorization": f"Bearer {clients.tokens['service']}"},
    )
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=60_000)
    provider = MeterProvider(
        resource=Resource.create(
            {"service.name": "checkout", "deployment.environment.name": "production"}
        ),
        metric_readers=[reader],
    )
    meter = provider.get_meter("tests")
    counter = meter.create_counter("orders_total")
    histogram = meter.create_histogram("request_ms")
    meter.create_observable_gauge(
        "queue_depth",
        callbacks=[
            lambda _: [
                __import__("opentelemetry.metrics", fromlist=["Observation"]).Observation(
                    7, {"queue": "emails"}
                )
            ]
        ],
    )
    counter.add(3, {"region": "eu"})
    for value in (5, 15, 25, 250):
        histogram.record(value)
    assert reader.force_flush(timeout_millis=10_000)
    rows = _rows(engine)
    provider.shutdown()
    assert rows["orders_total"][0] == 3
    assert rows["orders_total"][1]["region"] == "eu"
    assert rows["orders_total"][1]["service.name"] == "checkout"
    assert rows["queue_depth"][0] == 7
    assert rows["request_ms_count"][0] == 4
    assert rows["request_ms_sum"][0] == 295
    assert 0 < rows["request_ms_p50"][0] <= 25
    assert all(env == "production" for _, _, env in rows.values())


def _series_values(engine: Engine, name: str, service: str) -> list[float]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT value, tags, timestamp FROM monitoring_metrics WHERE name = :n"),
            {"n": name},
        ).all()
    mine = [
        (str(at), float(value))
        for value, tags, at in rows
        if (tags if isinstance(tags, dict) else json.loads(tags)).get("service.name") == service
    ]
    # A cumulative exporter sends an unchanged series again at shutdown (a zero increment);
    # a delta exporter sends nothing for an interval without measurements.
    return [value for _, value in sorted(mine) if value != 0]


def test_cumulative_and_delta_sdk_exports_store_the_same_per_interval_figures(
    clients: Clients, engine: Engine
) -> None:
    """The OpenTelemetry SDK exporting (gzip) in cumulative and in delta temporality: counters,
    histograms, exponential histograms and up-down counters give the same stored points, each
    describing its own export interval, not the process' lifetime."""
    from opentelemetry.exporter.otlp.proto.http import Compression
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import (
        Counter,
        Histogram,
        MeterProvider,
        ObservableCounter,
        ObservableGauge,
        ObservableUpDownCounter,
        UpDownCounter,
    )
    from opentelemetry.sdk.metrics.export import (
        AggregationTemporality,
        PeriodicExportingMetricReader,
    )
    from opentelemetry.sdk.metrics.view import ExponentialBucketHistogramAggregation, View
    from opentelemetry.sdk.resources import Resource

    kinds = (
        Counter,
        UpDownCounter,
        Histogram,
        ObservableCounter,
        ObservableUpDownCounter,
        ObservableGauge,
    )
    for temporality in (AggregationTemporality.CUMULATIVE, AggregationTemporality.DELTA):
        exporter = OTLPMetricExporter(
            endpoint=f"{clients.server.base_url}/v1/metrics",
            headers={"Authorization": f"Bearer {clients.tokens['service']}"},
            compression=Compression.Gzip,
            preferred_temporality=dict.fromkeys(kinds, temporality),
        )
        reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
        provider = MeterProvider(
            resource=Resource.create(
                {"service.name": temporality.name, "deployment.environment.name": "production"}
            ),
            metric_readers=[reader],
            views=[
                View(
                    instrument_name="latency_exp_ms",
                    aggregation=ExponentialBucketHistogramAggregation(max_size=40),
                ),
            ],
        )
        meter = provider.get_meter("tests")
        orders = meter.create_counter("orders")
        queue = meter.create_up_down_counter("queue_changes")
        latency = meter.create_histogram("latency_ms")
        exponential = meter.create_histogram("latency_exp_ms")
        for batch in ([5, 15, 25, 250], [1000, 2000]):
            orders.add(len(batch))
            queue.add(len(batch))
            queue.add(-1)
            for value in batch:
                latency.record(value)
                exponential.record(value)
            assert reader.force_flush(timeout_millis=10_000)
        provider.shutdown()

    for service in ("CUMULATIVE", "DELTA"):
        assert _series_values(engine, "orders", service) == [4, 2], service
        assert _series_values(engine, "queue_changes", service) == [3, 1], service
        assert _series_values(engine, "latency_ms_count", service) == [4, 2], service
        assert _series_values(engine, "latency_ms_sum", service) == [295, 3000], service
        assert _series_values(engine, "latency_exp_ms_count", service) == [4, 2], service
        assert _series_values(engine, "latency_exp_ms_sum", service) == [295, 3000], service
        # The second interval's median is in its own values (1000, 2000), not the lifetime's.
        assert 1000 <= _series_values(engine, "latency_ms_p50", service)[1] <= 2500, service
        first, second = _series_values(engine, "latency_exp_ms_p50", service)
        assert 5 <= first <= 30, service
        assert 900 <= second <= 2100, service
    for name in ("latency_ms_p50", "latency_ms_p95", "latency_ms_p99"):
        assert _series_values(engine, name, "CUMULATIVE") == _series_values(engine, name, "DELTA")
    # An exponential histogram's scale follows the range it has seen: the cumulative one covers
    # 5..2000 with 40 buckets, the second delta only 1000..2000, so their estimates agree within
    # one bucket of the coarser scale (a factor 2^(1/4) at scale 2).
    for name in ("latency_exp_ms_p50", "latency_exp_ms_p95", "latency_exp_ms_p99"):
        cumulative = _series_values(engine, name, "CUMULATIVE")
        delta = _series_values(engine, name, "DELTA")
        assert cumulative == pytest.approx(delta, rel=0.2), name


def _cumulative_sum(value: float, start: int, at: int) -> dict[str, Any]:
    point = {"asDouble": value, "startTimeUnixNano": str(start), "timeUnixNano": str(at)}
    return {
        "resourceMetrics": [
            {
                "resource": {
                    "attributes": [
                        {"key": "deployment.environment.name", "value": {"stringValue": "staging"}}
                    ]
                },
                "scopeMetrics": [
                    {
                        "metrics": [
                            {
                                "name": "requests",
                                "sum": {
                                    "aggregationTemporality": 2,
                                    "isMonotonic": True,
                                    "dataPoints": [point],
                                },
                            }
                        ]
                    }
                ],
            }
        ]
    }


def test_cumulative_points_become_increments_with_resets_and_retries(
    clients: Clients, engine: Engine
) -> None:
    """A cumulative series is stored as what it gained since its previous point: a new start
    time (a restarted process) begins again, and a retried export is stored once."""
    base = int((datetime.now(UTC) - timedelta(minutes=5)).timestamp()) * 10**9
    start = base
    sends = [
        (10.0, start, base + 60 * 10**9),
        (15.0, start, base + 120 * 10**9),
        (15.0, start, base + 120 * 10**9),  # the same export again (a retry)
        (12.0, start, base + 100 * 10**9),  # older than what is stored: out of order
        (2.0, base + 150 * 10**9, base + 180 * 10**9),  # the process restarted
        (7.0, base + 150 * 10**9, base + 240 * 10**9),
    ]
    with clients.as_role("service") as client:
        for value, begun, at in sends:
            response = client.post("/v1/metrics", json=_cumulative_sum(value, begun, at))
            assert response.status_code == 200, response.text
    with engine.connect() as conn:
        stored = conn.execute(
            sa.text(
                "SELECT value FROM monitoring_metrics WHERE name = 'requests' ORDER BY timestamp"
            )
        ).scalars()
        assert [float(v) for v in stored] == [10.0, 5.0, 2.0, 5.0]


def test_a_sum_too_large_for_a_float_is_a_clear_error() -> None:
    import pytest

    from shipboard.core.errors import InvalidInput
    from shipboard.monitoring.series import total

    assert total([1e308, -1e308, 5.0]) == 5.0
    with pytest.raises(InvalidInput, match="too large"):
        total([1.7e308, 1.7e308])
