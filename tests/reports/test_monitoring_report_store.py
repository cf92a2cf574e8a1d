"""The monitoring report from the user's store (issue 23 §1): with SHIPBOARD_PROMETHEUS_URL set,
the report's metrics come from a real VictoriaMetrics by ``query_range``, with the numbers the
database gives for the same points where the store can give them exactly, and a store that
cannot answer is a 503."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from shipboard.core.time import utcnow
from shipboard.monitoring.forwarding import Forwarder
from tests.support.live import LiveServer, PrometheusServer, VictoriaMetrics, free_port
from tests.support.problems import assert_problem
from tests.support.promstore import remote_write


def _points() -> list[dict[str, Any]]:
    start = utcnow().replace(second=0, microsecond=0) - timedelta(hours=3)
    rising = [
        {
            "name": "checkout_latency_ms",
            "value": 100 + minute * 0.5 + (900 if minute == 95 else 0),  # one spike
            "timestamp": (start + timedelta(minutes=minute)).isoformat(),
            "environment": "production",
            "source": "rest",
        }
        for minute in range(150)
    ]
    elsewhere = [{**p, "environment": "staging"} for p in rising[:10]]
    dotted = [{**p, "name": "api.errors", "value": float(i % 4)} for i, p in enumerate(rising[:40])]
    return rising + elsewhere + dotted


def _report(client: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = client.get(
        "/api/v1/reports/monitoring", params={"environment": "production", **params}
    )
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def test_the_report_reads_the_store_with_the_databases_numbers(
    serve: Callable[..., LiveServer],
    engine: Engine,
    make_user: Callable[[str, str], str],
    victoria_metrics: VictoriaMetrics,
) -> None:
    live = serve(
        remote_write_url=f"{victoria_metrics.url}/api/v1/write",
        prometheus_url=victoria_metrics.url,
    )
    with httpx.Client(
        base_url=live.base_url,
        headers={"Authorization": f"Bearer {make_user('collector', 'service')}"},
        timeout=30,
    ) as service:
        service.post("/api/v1/metrics", json={"metrics": _points()}).raise_for_status()
    forwarder = Forwarder(live.app.state.forwarding)
    assert forwarder.forward_once(engine).sent_points == 200
    forwarder.close()
    victoria_metrics.flush()

    with httpx.Client(
        base_url=live.base_url,
        headers={"Authorization": f"Bearer {make_user('reader', 'viewer')}"},
        timeout=30,
    ) as client:
        store = _report(client, period="24h")
        embedded = _report(client, period="24h", source="embedded")
        html = client.get(
            "/api/v1/reports/monitoring",
            params={"environment": "production", "period": "24h", "format": "html"},
        )
    assert (store["source"], embedded["source"]) == ("store", "embedded")
    # The store knows the names it was written under.
    assert [m["name"] for m in store["metrics"]] == ["api_errors", "checkout_latency_ms"]
    assert [m["name"] for m in embedded["metrics"]] == ["api.errors", "checkout_latency_ms"]
    ours, theirs = store["metrics"][1], embedded["metrics"][1]
    assert ours["points"] == theirs["points"] == 150  # staging's points are not production's
    for exact in ("min", "max", "avg", "p95"):
        assert math.isclose(ours[exact], theirs[exact], rel_tol=1e-9), exact
    assert ours["trend"] == theirs["trend"] == "rising"
    assert math.isclose(ours["trend_per_day"], theirs["trend_per_day"], rel_tol=0.2)
    assert theirs["anomalies"] == 1
    assert ours["anomalies"] == 1  # the bucket the spike lands in
    assert store["alerts"] == embedded["alerts"]
    assert "Metrics from the metrics store" in html.text


def test_a_report_from_a_store_that_cannot_answer_is_a_503(
    serve: Callable[..., LiveServer], make_user: Callable[[str, str], str]
) -> None:
    live = serve(prometheus_url=f"http://127.0.0.1:{free_port()}")
    with httpx.Client(
        base_url=live.base_url,
        headers={"Authorization": f"Bearer {make_user('reader', 'viewer')}"},
        timeout=30,
    ) as client:
        down = client.get("/api/v1/reports/monitoring", params={"environment": "production"})
        fallback = _report(client, source="embedded")
    assert "could not be reached (ConnectError)" in str(assert_problem(down, 503)["detail"])
    assert fallback["source"] == "embedded"


def test_nan_samples_in_a_real_prometheus_leave_their_buckets_out_of_the_report(
    serve: Callable[..., LiveServer],
    make_user: Callable[[str, str], str],
    prometheus: Callable[..., PrometheusServer],
) -> None:
    # Prometheus stores NaN (a summary's quantile with no observations is one): one such sample
    # made the whole report a 422 ("use avg, min or max"), and the scheduled one never went out.
    store = prometheus()
    now = time.time()
    for i in range(5):
        remote_write(
            store.url, "queue_depth", math.nan if i == 2 else float(i), at=now - 600 + i * 60
        )
        remote_write(store.url, "idle_quantile", math.nan, at=now - 600 + i * 60)
    live = serve(prometheus_url=store.url)
    with httpx.Client(
        base_url=live.base_url,
        headers={"Authorization": f"Bearer {make_user('reader', 'viewer')}"},
        timeout=30,
    ) as client:
        report = _report(client, period="1h")
    (summary,) = report["metrics"]  # idle_quantile has no number to summarise
    assert summary["name"] == "queue_depth"
    assert (summary["min"], summary["max"], summary["avg"]) == (0.0, 4.0, 2.0)
    assert summary["points"] == 5
