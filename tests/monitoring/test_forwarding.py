"""Forwarding to the user's store (issue 23): points acknowledged over the REST API reach a real
VictoriaMetrics by remote write from the durable queue, survive the store being down, keep
their order, and a full queue refuses new points instead of dropping any. A hostile endpoint
(tests/support/hostile.py) cannot hold the forwarder, nor get its credentials or a NUL kept."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.core.time import utcnow
from shipboard.db.engine import system_transaction
from shipboard.monitoring import remote_write as rw
from shipboard.monitoring.forwarding import Forwarder, queue_status
from shipboard.monitoring.models import MonitoringMetric, RemoteWriteBatch
from tests.support.hostile import ECHO, HostileStore
from tests.support.live import LiveServer, PrometheusServer, Receiver, VictoriaMetrics, wait_for


def _points(count: int, *, name: str = "checkout.latency") -> list[dict[str, Any]]:
    start = utcnow().replace(microsecond=0) - timedelta(minutes=3)
    return [
        {
            "name": name,
            "value": i + 0.5,
            "environment": "production",
            "source": "rest",
            "tags": {"pod": "web-1"},
            "timestamp": (start + timedelta(seconds=i)).isoformat(),
        }
        for i in range(count)
    ]


def _client(live: LiveServer, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=live.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def _queued(engine: Engine) -> int:
    with system_transaction(engine) as session:
        return queue_status(session).points


def test_acknowledged_points_reach_the_store_after_it_was_down(
    serve: Callable[..., LiveServer],
    engine: Engine,
    make_user: Callable[[str, str], str],
    victoria_metrics: VictoriaMetrics,
) -> None:
    live = serve(remote_write_url=f"{victoria_metrics.url}/api/v1/write")
    forwarder = Forwarder(live.app.state.forwarding)
    victoria_metrics.stop()  # the store goes away before the points arrive
    points = _points(5)
    with _client(live, make_user("collector", "service")) as client:
        assert client.post("/api/v1/metrics", json={"metrics": points}).json() == {"accepted": 5}

    down = forwarder.forward_once(engine)
    assert down.retrying
    assert down.sent_points == 0
    assert _queued(engine) == 5  # acknowledged, so still on disk
    with _client(live, make_user("operator", "admin")) as admin:
        exposed = admin.get("/metrics").text
    assert "shipboard_remote_write_queue_points 5.0" in exposed
    assert "shipboard_remote_write_queue_batches 1.0" in exposed

    victoria_metrics.start()
    sent = wait_for(lambda: forwarder.forward_once(engine).sent_points, timeout=10, interval=0.3)
    forwarder.close()
    assert sent == 5
    assert _queued(engine) == 0

    victoria_metrics.flush()
    answer = httpx.get(
        f"{victoria_metrics.url}/api/v1/query",
        params={"query": 'checkout_latency{environment="production"}[10m]'},
        timeout=10,
    ).json()
    (series,) = answer["data"]["result"]
    assert series["metric"] == {
        "__name__": "checkout_latency",
        "environment": "production",
        "source": "rest",
        "pod": "web-1",
    }
    expected = [
        (int(datetime.fromisoformat(p["timestamp"]).timestamp() * 1000), p["value"]) for p in points
    ]
    assert [(round(float(t) * 1000), float(v)) for t, v in series["values"]] == expected


def test_a_full_queue_refuses_new_points_and_stores_none(
    serve: Callable[..., LiveServer], engine: Engine, make_user: Callable[[str, str], str]
) -> None:
    live = serve(remote_write_url="http://127.0.0.1:9/api/v1/write", remote_write_queue_mb=1e-6)
    with _client(live, make_user("collector", "service")) as client:
        refused = client.post("/api/v1/metrics", json={"metrics": _points(3)})
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "30"
        assert "waiting for the metrics store" in refused.json()["detail"]
    with system_transaction(engine) as session:
        stored = session.scalar(sa.select(sa.func.count()).select_from(MonitoringMetric))
    assert stored == 0
    assert _queued(engine) == 0


def test_batches_leave_in_order_and_a_refused_one_is_dropped_not_retried(
    serve: Callable[..., LiveServer], engine: Engine, make_user: Callable[[str, str], str]
) -> None:
    store = Receiver(statuses=[503, 400, 204])
    live = serve(remote_write_url=store.url)
    forwarder = Forwarder(live.app.state.forwarding)
    with _client(live, make_user("collector", "service")) as client:
        for name in ("first", "second"):
            batch = _points(2, name=name) if name == "first" else _points(3, name=name)
            assert client.post("/api/v1/metrics", json={"metrics": batch}).status_code == 200

    busy = forwarder.forward_once(engine)  # 503: the oldest waits, and nothing overtakes it
    assert (busy.retrying, busy.sent_points, len(store.requests)) == (True, 0, 1)
    assert _queued(engine) == 5

    # The oldest comes back due after its backoff; the store refuses it for good (400): it is
    # dropped and counted, and the next batch goes.
    result = wait_for(
        lambda: (r := forwarder.forward_once(engine)).dropped_points and r, timeout=10
    )
    forwarder.close()
    assert (result.dropped_points, result.sent_points) == (2, 3)
    assert _queued(engine) == 0
    with _client(live, make_user("operator", "admin")) as admin:
        exposed = admin.get("/metrics").text
    assert "shipboard_remote_write_dropped_points_last_hour 2.0" in exposed
    assert "shipboard_remote_write_queue_points 0.0" in exposed
    sent = [rw.decode(body) for _, body in store.requests]
    names = [dict(s.labels)["__name__"] for batch in sent for s in batch]
    assert names == ["first", "first", "second"]
    headers = store.requests[-1][0]
    assert headers["Content-Encoding"] == "snappy"
    assert headers["X-Prometheus-Remote-Write-Version"] == "0.1.0"


def test_the_background_runtime_forwards_without_being_asked(
    serve: Callable[..., LiveServer],
    engine: Engine,
    make_user: Callable[[str, str], str],
    victoria_metrics: VictoriaMetrics,
) -> None:
    from shipboard import background

    live = serve(remote_write_url=f"{victoria_metrics.url}/api/v1/write")
    runtime = background.runtime(
        engine, live.app.state.keyring, poll_s=0.1, forwarding=live.app.state.forwarding
    )
    stop = runtime.start()
    try:
        with _client(live, make_user("collector", "service")) as client:
            assert client.post("/api/v1/metrics", json={"metrics": _points(4)}).status_code == 200

        def arrived() -> int:
            victoria_metrics.flush()
            answer = httpx.get(
                f"{victoria_metrics.url}/api/v1/query",
                params={"query": "count_over_time(checkout_latency[10m])"},
                timeout=10,
            ).json()
            result = answer["data"]["result"]
            return int(float(result[0]["value"][1])) if result else 0

        assert wait_for(arrived, timeout=20, interval=0.3) == 4
        assert _queued(engine) == 0
    finally:
        stop.set()
        assert runtime.thread is not None
        runtime.thread.join(timeout=30)


def test_a_stores_refusal_is_kept_without_credentials_nul_or_its_whole_body(
    serve: Callable[..., LiveServer],
    engine: Engine,
    make_user: Callable[[str, str], str],
    hostile_store: HostileStore,
) -> None:
    # A proxy that echoes the Authorization header, with a NUL (PostgreSQL's text refuses it:
    # recording the refusal failed, and the batch blocked the queue for good) and 8 MiB after.
    hostile_store.answer(f"bad labels \0 {ECHO} ".encode() + b"x" * (8 << 20), 400)
    live = serve(remote_write_url=hostile_store.url, remote_write_bearer_token="tok-71c4e0d2")
    with _client(live, make_user("collector", "service")) as client:
        assert client.post("/api/v1/metrics", json={"metrics": _points(2)}).status_code == 200
    forwarder = Forwarder(live.app.state.forwarding)
    try:
        result = forwarder.forward_once(engine)
    finally:
        forwarder.close()
    assert (result.dropped_points, result.sent_points) == (2, 0)
    with system_transaction(engine) as session:
        (error,) = session.scalars(sa.select(RemoteWriteBatch.last_error)).all()
    assert error is not None
    assert error.startswith("400: bad labels \ufffd ")
    assert "Authorization: Bearer ***" in error
    assert len(error) < 400
    assert "71c4e0d2" not in str(result.errors)


def test_a_store_that_drips_its_answer_is_retried_after_the_total_deadline(
    serve: Callable[..., LiveServer],
    engine: Engine,
    make_user: Callable[[str, str], str],
    hostile_store: HostileStore,
) -> None:
    # One byte every 0.2 s never trips the 1-second read timeout; the run holds the task's
    # lease for as long as the store likes unless the request as a whole is bounded.
    hostile_store.answer(b"x" * 100, 200)
    hostile_store.drip_s = 0.2
    live = serve(remote_write_url=hostile_store.url)
    with _client(live, make_user("collector", "service")) as client:
        assert client.post("/api/v1/metrics", json={"metrics": _points(2)}).status_code == 200
    forwarding = replace(live.app.state.forwarding, timeout_s=1.0, total_s=2.0)
    forwarder = Forwarder(forwarding)
    started = time.monotonic()
    try:
        result = forwarder.forward_once(engine)
    finally:
        forwarder.close()
    assert time.monotonic() - started < 4
    assert result.retrying
    assert result.errors == ["no answer (ReadTimeout)"]
    assert _queued(engine) == 2


def test_a_series_the_store_refuses_costs_only_its_own_points(
    serve: Callable[..., LiveServer],
    engine: Engine,
    make_user: Callable[[str, str], str],
    prometheus: Callable[..., PrometheusServer],
) -> None:
    # A real Prometheus refuses a whole request ("400: out of bounds") for one sample older than
    # its head block: the acknowledged points sent with it were dropped too.
    store = prometheus()
    live = serve(remote_write_url=f"{store.url}/api/v1/write")
    recent = (utcnow() - timedelta(seconds=30)).isoformat()
    points = [
        {"name": name, "value": 7, "environment": "production", "source": "rest", "timestamp": at}
        for name, at in [
            ("good_one", recent),
            ("too_old", "2001-01-01T00:00:00+00:00"),
            ("good_two", recent),
            ("good_three", recent),
        ]
    ]
    with _client(live, make_user("collector", "service")) as client:
        assert client.post("/api/v1/metrics", json={"metrics": points}).status_code == 200
    forwarder = Forwarder(live.app.state.forwarding)
    try:
        result = forwarder.forward_once(engine)
    finally:
        forwarder.close()
    assert (result.sent_points, result.dropped_points, result.retrying) == (3, 1, False)
    assert result.errors == ["400: out of bounds\n"]
    assert _queued(engine) == 0
    with system_transaction(engine) as session:
        assert queue_status(session).dropped_last_hour == 1
    found = httpx.get(
        f"{store.url}/api/v1/query", params={"query": '{__name__=~"good_.*"}'}, timeout=10
    ).json()["data"]["result"]
    assert sorted(s["metric"]["__name__"] for s in found) == ["good_one", "good_three", "good_two"]


def test_a_refused_batch_whose_halves_meet_a_store_going_down_keeps_the_rest(
    serve: Callable[..., LiveServer],
    engine: Engine,
    make_user: Callable[[str, str], str],
) -> None:
    store = Receiver(statuses=[400, 400, 204, 503])  # whole, first half, its halves …
    live = serve(remote_write_url=store.url)
    with _client(live, make_user("collector", "service")) as client:
        batch = [{**p, "name": f"m{i}"} for i, p in enumerate(_points(4))]
        assert client.post("/api/v1/metrics", json={"metrics": batch}).status_code == 200
    forwarder = Forwarder(live.app.state.forwarding)
    try:
        result = forwarder.forward_once(engine)
    finally:
        forwarder.close()
    assert (result.sent_points, result.dropped_points, result.retrying) == (1, 0, True)
    assert _queued(engine) == 3
    with system_transaction(engine) as session:
        (payload,) = session.scalars(
            sa.select(RemoteWriteBatch.payload).where(RemoteWriteBatch.dropped_at.is_(None))
        ).all()
    names = sorted(dict(s.labels)["__name__"] for s in rw.decode(payload))
    sent = {dict(s.labels)["__name__"] for s in rw.decode(store.requests[2][1])}
    assert len(names) == 3
    assert sent.isdisjoint(names)
