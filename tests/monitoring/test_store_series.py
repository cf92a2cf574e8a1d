"""Series from the user's store (issue 23 §1): points ingested through Shipboard and forwarded to
a real VictoriaMetrics (or Prometheus) come back through ``GET /api/v1/metrics/series`` from the
store with the buckets and values the embedded store gives for the same points; tag values
cannot change the query; a store that cannot answer is a 503 that says so."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from shipboard.core.time import utcnow
from shipboard.monitoring.forwarding import Forwarder
from shipboard.monitoring.store_series import expression, selector
from tests.support.hostile import ECHO, HostileStore
from tests.support.live import LiveServer, Receiver, VictoriaMetrics, free_port
from tests.support.problems import assert_problem
from tests.support.promstore import Store

BASE = utcnow().replace(second=0, microsecond=0) - timedelta(hours=2)


def _point(name: str, at: datetime, value: float, tags: dict[str, str]) -> dict[str, Any]:
    return {
        "name": name,
        "value": value,
        "timestamp": at.isoformat(),
        "environment": "production",
        "source": "rest",
        "tags": tags,
    }


def _through_shipboard(
    live: LiveServer, engine: Engine, store: Store | VictoriaMetrics, token: str, points: list[Any]
) -> None:
    """Ingest over REST, forward the queue to the store, and make it searchable."""
    with httpx.Client(base_url=live.base_url, headers=_auth(token), timeout=30) as client:
        for start in range(0, len(points), 5000):
            batch = {"metrics": points[start : start + 5000]}
            client.post("/api/v1/metrics", json=batch).raise_for_status()
    forwarder = Forwarder(live.app.state.forwarding)
    try:
        while (sent := forwarder.forward_once(engine)).sent_points:
            assert not sent.retrying
    finally:
        forwarder.close()
    store.flush()


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _series(client: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = client.get("/api/v1/metrics/series", params=params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _same(store: dict[str, Any], embedded: dict[str, Any]) -> None:
    assert (store["source"], embedded["source"]) == ("store", "embedded")
    assert [t for t, _ in store["points"]] == [t for t, _ in embedded["points"]]
    for (_, ours), (_, theirs) in zip(store["points"], embedded["points"], strict=True):
        assert math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-9), (ours, theirs)


def test_the_store_answers_the_buckets_the_embedded_store_answers(
    serve: Callable[..., LiveServer],
    engine: Engine,
    make_user: Callable[[str, str], str],
    store: Store,
) -> None:
    live = serve(remote_write_url=f"{store.url}/api/v1/write", prometheus_url=store.url)
    # Two series of one metric, one point every 7 s and every 11 s: some land exactly on a
    # minute, where one bucket ends and the next begins. Values are exact in binary.
    points = [
        _point("checkout.latency", BASE + timedelta(seconds=7 * i), i * 0.25, {"pod": "a"})
        for i in range(600)
    ] + [
        _point("checkout.latency", BASE + timedelta(seconds=11 * i), 100 - i * 0.5, {"pod": "b"})
        for i in range(380)
    ]
    _through_shipboard(live, engine, store, make_user("collector", "service"), points)

    windows = [
        (BASE, BASE + timedelta(minutes=60), 60),  # whole minutes: boundaries on points
        (BASE + timedelta(seconds=0.25), BASE + timedelta(minutes=50, seconds=7), 120),
        (BASE + timedelta(seconds=3), BASE + timedelta(minutes=1), 300),  # only a short bucket
    ]
    with httpx.Client(
        base_url=live.base_url, headers=_auth(make_user("reader", "viewer")), timeout=30
    ) as client:
        for since, until, step in windows:
            common = {
                "name": "checkout.latency",
                "environment": "production",
                "since": since.isoformat(),
                "until": until.isoformat(),
                "step": step,
            }
            for agg in ("avg", "min", "max", "sum", "count"):
                for tags in ({}, {"tag.pod": "b"}):
                    asked = {**common, **tags, "agg": agg}
                    answered = _series(client, **asked)
                    embedded = _series(client, **asked, source="embedded")
                    assert answered["points"], asked
                    _same(answered, embedded)
            # A percentile pools the points of one series exactly.
            for agg in ("p50", "p95", "p99"):
                asked = {**common, "tag.pod": "a", "agg": agg}
                _same(_series(client, **asked), _series(client, **asked, source="embedded"))
        # Over several series a percentile is the quantile of the series' quantiles.
        pooled = _series(client, **{**common, "agg": "p50"})
        assert pooled["source"] == "store"
        assert len(pooled["points"]) == 1


def test_tag_values_with_quotes_and_backslashes_cannot_change_the_query(
    serve: Callable[..., LiveServer],
    engine: Engine,
    make_user: Callable[[str, str], str],
    victoria_metrics: VictoriaMetrics,
) -> None:
    live = serve(
        remote_write_url=f"{victoria_metrics.url}/api/v1/write",
        prometheus_url=victoria_metrics.url,
    )
    odd = 'we"b\\1'
    points = [
        _point("api.errors", BASE + timedelta(seconds=i), 1.0, {"http.route": odd})
        for i in range(10)
    ] + [
        _point("api.errors", BASE + timedelta(seconds=i), 5.0, {"http.route": "web1"})
        for i in range(10)
    ]
    _through_shipboard(live, engine, victoria_metrics, make_user("collector", "service"), points)
    with httpx.Client(
        base_url=live.base_url, headers=_auth(make_user("reader", "viewer")), timeout=30
    ) as client:
        common = {
            "name": "api.errors",
            "since": BASE.isoformat(),
            "until": (BASE + timedelta(minutes=1)).isoformat(),
            "step": 60,
            "agg": "sum",
        }
        exact = _series(client, **common, **{"tag.http.route": odd})
        assert exact["points"] == [[BASE.isoformat().replace("+00:00", "Z"), 10.0]]
        assert exact["tags"] == {"http.route": odd}
        everything = _series(client, **common)
        assert [v for _, v in everything["points"]] == [60.0]
        # Values that would widen the query if pasted into it unescaped: they are looked up
        # as themselves, and no series carries them.
        for hostile in ('x",http_route=~".+', 'web1"} or vector(1) #', "web1\\", '\\"'):
            found = _series(client, **common, **{"tag.http.route": hostile})
            assert found["points"] == [], hostile
        # A tag the store never receives (it would replace Shipboard's own label).
        refused = client.get("/api/v1/metrics/series", params={**common, "tag.source": "rest"})
        assert_problem(refused, 422)
        assert "tag.source" in str(refused.json()["errors"])


def test_a_store_that_cannot_answer_is_a_503_without_its_credentials(
    serve: Callable[..., LiveServer], make_user: Callable[[str, str], str]
) -> None:
    live = serve(
        prometheus_url=f"http://127.0.0.1:{free_port()}",
        prometheus_username="reader",
        prometheus_password="hunter2-secret",
    )
    with httpx.Client(
        base_url=live.base_url, headers=_auth(make_user("reader", "viewer")), timeout=30
    ) as client:
        down = client.get("/api/v1/metrics/series", params={"name": "checkout.latency"})
        # The embedded store still answers when asked by name.
        embedded = _series(client, name="checkout.latency", source="embedded")
    assert_problem(down, 503)
    body = down.json()
    assert body["type"].endswith("metrics-store-unavailable")
    assert "could not be reached (ConnectError)" in body["detail"]
    assert down.headers["Retry-After"] == "10"
    assert "hunter2" not in down.text
    assert live.settings.prometheus_url not in down.text
    assert embedded["source"] == "embedded"


def test_a_store_that_answers_something_else_is_a_503_saying_what(
    serve: Callable[..., LiveServer], make_user: Callable[[str, str], str], receiver: Receiver
) -> None:
    live = serve(prometheus_url=receiver.url)  # answers GET with an HTML 501
    with httpx.Client(
        base_url=live.base_url, headers=_auth(make_user("reader", "viewer")), timeout=30
    ) as client:
        odd = client.get("/api/v1/metrics/series", params={"name": "checkout.latency"})
    detail = str(assert_problem(odd, 503)["detail"])
    assert "answered, but not with series: the metrics store answered 501 without JSON" in detail


def test_without_a_store_series_come_from_the_database_and_source_store_is_refused(
    serve: Callable[..., LiveServer], make_user: Callable[[str, str], str]
) -> None:
    live = serve()
    with httpx.Client(
        base_url=live.base_url, headers=_auth(make_user("reader", "viewer")), timeout=30
    ) as client:
        assert _series(client, name="checkout.latency")["source"] == "embedded"
        refused = client.get(
            "/api/v1/metrics/series", params={"name": "checkout.latency", "source": "store"}
        )
    assert_problem(refused, 422)
    assert "SHIPBOARD_PROMETHEUS_URL" in refused.json()["detail"]


@pytest.mark.parametrize("agg", ["sum", "p95"])
def test_the_store_is_asked_for_one_aggregated_series(agg: str) -> None:
    sel = selector("api.latency-ms", environment="prod", tags={"a.b": 'x"y'})
    assert sel == 'api_latency_ms{environment="prod",a_b="x\\"y"}'
    query = expression(sel, agg=agg, window_ms=1500)
    assert f"{sel}[1500ms] offset 1ms" in query
    assert query.startswith("sum(" if agg == "sum" else "quantile(0.95,")


@pytest.mark.parametrize("stamp", ["+Inf", "NaN"])
def test_a_store_whose_sample_times_are_not_finite_is_a_503_naming_the_store(
    serve: Callable[..., LiveServer],
    make_user: Callable[[str, str], str],
    hostile_store: HostileStore,
    stamp: str,
) -> None:
    # Each sample's time becomes a bucket index with round(): +Inf raised OverflowError, which
    # answered 422 blaming the request's dates, and NaN a ValueError.
    matrix = {"resultType": "matrix", "result": [{"metric": {}, "values": [[stamp, "1"]]}]}
    hostile_store.answer({"status": "success", "data": matrix})
    live = serve(prometheus_url=hostile_store.url, prometheus_bearer_token="tok-5be0c2a9")
    with httpx.Client(
        base_url=live.base_url, headers=_auth(make_user("reader", "viewer")), timeout=30
    ) as client:
        odd = client.get("/api/v1/metrics/series", params={"name": "checkout.latency", "step": 60})
        hostile_store.answer({"status": "error", "error": f"no: {ECHO}"}, 503)
        echoed = client.get("/api/v1/metrics/series", params={"name": "checkout.latency"})
    detail = str(assert_problem(odd, 503)["detail"])
    assert "sample time that is not a finite number" in detail
    assert "Authorization: Bearer ***" in str(assert_problem(echoed, 503)["detail"])
    assert "5be0c2a9" not in echoed.text
