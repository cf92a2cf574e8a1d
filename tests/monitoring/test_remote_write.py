"""Remote write 1.0 as the real stores read it: points encoded by monitoring/remote_write.py are
sent to a real Prometheus (``--web.enable-remote-write-receiver``) and a real VictoriaMetrics,
then read back through each store's own query API with their names, labels, values and
timestamps."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from shipboard.monitoring import remote_write as rw
from tests.support.live import VictoriaMetrics, free_port


def _post(url: str, series: list[rw.Series]) -> httpx.Response:
    return httpx.post(
        f"{url}/api/v1/write",
        content=rw.encode(series),
        headers={
            "Content-Type": rw.CONTENT_TYPE,
            "Content-Encoding": rw.CONTENT_ENCODING,
            "X-Prometheus-Remote-Write-Version": rw.PROTOCOL_VERSION,
        },
        timeout=10,
    )


def _points(now_ms: int) -> tuple[rw.Series, list[tuple[int, float]]]:
    samples = [(now_ms - 60_000 * k, float(k) + 0.25) for k in (3, 2, 1)]
    series, collisions = rw.series_for(
        name="api.latency-p95",
        environment="production",
        source="rest",
        tags={"region": "eu-west", "pod.name": "web-1", "__secret": "x"},
        samples=samples,
    )
    assert collisions == []
    return series, sorted(samples)


def _read_back(url: str, now_ms: int) -> dict[str, Any]:
    query = 'api_latency_p95{environment="production"}[10m]'
    body = httpx.get(
        f"{url}/api/v1/query", params={"query": query, "time": now_ms / 1000 + 1}, timeout=10
    ).json()
    assert body["status"] == "success", body
    results = body["data"]["result"]
    assert len(results) == 1, results
    return dict(results[0])


def _assert_round_trip(result: dict[str, Any], samples: list[tuple[int, float]]) -> None:
    assert result["metric"] == {
        "__name__": "api_latency_p95",
        "environment": "production",
        "source": "rest",
        "region": "eu-west",
        "pod_name": "web-1",
        "tag__secret": "x",
    }
    got = [(round(float(t) * 1000), float(v)) for t, v in result["values"]]
    assert got == samples


def test_points_written_to_a_real_prometheus_come_back_from_its_query_api(
    prometheus: Callable[..., Any],
) -> None:
    server = prometheus()
    now_ms = int(time.time() * 1000)
    series, samples = _points(now_ms)
    answer = _post(server.url, [series])
    assert answer.status_code == 204, answer.text
    deadline = time.monotonic() + 10
    while True:
        try:
            result = _read_back(server.url, now_ms)
            break
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    _assert_round_trip(result, samples)


def test_points_written_to_a_real_victoriametrics_come_back_from_its_query_api(
    victoria_metrics: VictoriaMetrics,
) -> None:
    now_ms = int(time.time() * 1000)
    series, samples = _points(now_ms)
    answer = _post(victoria_metrics.url, [series])
    assert answer.status_code == 204, answer.text
    victoria_metrics.flush()
    _assert_round_trip(_read_back(victoria_metrics.url, now_ms), samples)


def test_a_store_refuses_a_request_that_is_not_a_write_request(
    prometheus: Callable[..., Any],
) -> None:
    server = prometheus()
    answer = httpx.post(
        f"{server.url}/api/v1/write",
        content=b"not snappy",
        headers={"Content-Type": rw.CONTENT_TYPE, "Content-Encoding": "snappy"},
        timeout=10,
    )
    assert answer.status_code == 400
    assert not rw.retryable(answer.status_code)
    assert rw.retryable(503)
    assert rw.retryable(429)


def test_names_and_tags_map_to_prometheus_names_and_collisions_are_reported() -> None:
    assert rw.metric_name("http_requests_total") == "http_requests_total"
    assert rw.metric_name("api.latency-p95") == "api_latency_p95"
    assert rw.metric_name("5xx.rate") == "_5xx_rate"
    assert rw.label_name("pod.name") == "pod_name"
    assert rw.label_name("__name__") == "tag__name__"
    assert rw.label_name("9lives") == "_9lives"
    series, collisions = rw.series_for(
        name="m",
        environment="staging",
        source="otlp",
        tags={"a.b": "1", "a-b": "2", "environment": "prod", "empty": ""},
        samples=[(2, 1.0), (1, 0.5)],
    )
    assert collisions == [
        "tags 'a-b' and 'a.b' of 'm' both map to label 'a_b'",
        "tag 'environment' of 'm' maps to the reserved label 'environment'",
    ]
    assert series.labels == (
        ("__name__", "m"),
        ("a_b", "2"),
        ("environment", "staging"),
        ("source", "otlp"),
    )
    assert series.samples == ((1, 0.5), (2, 1.0))


def test_the_encoding_round_trips_and_keeps_the_specs_rules() -> None:
    series = rw.Series(
        labels=(("__name__", "up"), ("job", "x")),
        samples=((-5, -1.5), (1_700_000_000_123, 2.0**60)),
    )
    assert rw.decode(rw.encode([series, series])) == [series, series]
    with pytest.raises(ValueError, match="__name__"):
        rw.encode([rw.Series(labels=(("job", "x"),), samples=())])
    with pytest.raises(ValueError, match="sorted"):
        rw.encode([rw.Series(labels=(("job", "x"), ("__name__", "up")), samples=())])


# --- reading the store back: core/promql.py -------------------------------------------


def _loaded(url: str, now_ms: int) -> None:
    for environment, base in (("production", 10.0), ("staging", 20.0)):
        series, _ = rw.series_for(
            name="errors_total",
            environment=environment,
            source="rest",
            tags={"version": "1.2.0"},
            samples=[(now_ms - 60_000 * k, base + k) for k in range(10)],
        )
        assert _post(url, [series]).status_code == 204


@pytest.mark.parametrize("engine", ["prometheus", "victoria-metrics"])
def test_queries_read_the_real_stores_and_variables_cannot_add_matchers(
    engine: str, request: pytest.FixtureRequest
) -> None:
    from datetime import UTC, datetime, timedelta

    from shipboard.core.errors import InvalidInput
    from shipboard.core.promql import PromStore, StoreError, StoreSettings, render

    if engine == "prometheus":
        url = request.getfixturevalue("prometheus")().url
    else:
        server = request.getfixturevalue("victoria_metrics")
        url = server.url
    now_ms = int(time.time() * 1000)
    _loaded(url, now_ms)
    if engine == "victoria-metrics":
        server.flush()
    store = PromStore(StoreSettings(url=url))
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    query = render('errors_total{environment="$environment"}', {"environment": "production"})
    # A store makes a point searchable a moment after it acknowledged it: poll, then assert.
    expected = [("production", 10.0)]
    deadline = time.monotonic() + 10
    while True:
        samples = store.query(query, at=now + timedelta(seconds=1))
        got = [(s.labels["environment"], s.value) for s in samples]
        if got == expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got == expected

    want = [19.0 - k for k in range(10)]
    while True:
        series = store.query_range(query, start=now - timedelta(minutes=9), end=now, step_s=60)
        if (len(series) == 1 and [v for _, v in series[0].points] == want) or (
            time.monotonic() > deadline
        ):
            break
        time.sleep(0.2)
    assert len(series) == 1
    assert [v for _, v in series[0].points] == want

    # A value that tries to close the string and widen the match stays one label value.
    hostile = render(
        'errors_total{environment="$environment"}', {"environment": 'x"} or errors_total{a="'}
    )
    assert store.query(hostile, at=now) == []

    with pytest.raises(InvalidInput, match="unknown variable \\$version"):
        render('x{v="${version}"}', {"environment": "production"})
    with pytest.raises(InvalidInput, match="refused the query"):
        store.validate("sum(errors_total", at=now - timedelta(hours=1))
    store.validate("sum(errors_total)", at=now - timedelta(hours=1))
    store.close()

    dead = PromStore(StoreSettings(url=f"http://127.0.0.1:{free_port()}", timeout_s=2))
    with pytest.raises(StoreError, match="did not answer") as refused:
        dead.query("up", at=now)
    assert not refused.value.bad_query
    dead.close()
