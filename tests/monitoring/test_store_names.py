"""Metric names from the user's store (issue 23 §1): ``GET /api/v1/metrics/names`` reads a real
VictoriaMetrics (or Prometheus) when SHIPBOARD_PROMETHEUS_URL is set, as series do — the names
Shipboard forwarded (under their mapped names) and the ones the store got from elsewhere, for
one environment, in a window — and says which store answered; ``source=embedded`` still reads
the database; a store that cannot answer is a 503 that says so."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy.engine import Engine

from shipboard.core.time import utcnow
from shipboard.monitoring.forwarding import Forwarder
from tests.support.live import LiveServer, free_port
from tests.support.problems import assert_problem
from tests.support.promstore import Store, remote_write

BASE = utcnow().replace(microsecond=0) - timedelta(hours=2)


def _point(name: str, at: datetime, environment: str = "production") -> dict[str, Any]:
    return {
        "name": name,
        "value": 1.0,
        "timestamp": at.isoformat(),
        "environment": environment,
        "source": "rest",
        "tags": {"pod": "a"},
    }


def _names(client: httpx.Client, **params: Any) -> dict[str, Any]:
    answer = client.get("/api/v1/metrics/names", params=params)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def _listed(answer: dict[str, Any]) -> list[str]:
    return [item["name"] for item in answer["items"]]


def _client(live: LiveServer, token: str) -> httpx.Client:
    return httpx.Client(
        base_url=live.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    )


def test_names_come_from_the_store_for_one_environment_and_window(
    serve: Callable[..., LiveServer],
    engine: Engine,
    make_user: Callable[[str, str], str],
    store: Store,
) -> None:
    live = serve(remote_write_url=f"{store.url}/api/v1/write", prometheus_url=store.url)
    points = [
        _point("checkout.latency", BASE),
        _point("checkout.latency", BASE + timedelta(minutes=30)),
        _point("queue.depth", BASE + timedelta(minutes=5)),
        _point("staging.only", BASE, environment="staging"),
    ]
    with _client(live, make_user("collector", "service")) as collector:
        collector.post("/api/v1/metrics", json={"metrics": points}).raise_for_status()
    forwarder = Forwarder(live.app.state.forwarding)
    try:
        while forwarder.forward_once(engine).sent_points:
            pass
    finally:
        forwarder.close()
    # A series the store got from the application's own exporter, not through Shipboard.
    remote_write(store.url, "app_requests_total", 3, at=BASE.timestamp())
    store.flush()

    with _client(live, make_user("reader", "viewer")) as reader:
        production = _names(reader, environment="production")
        assert production["source"] == "store"
        assert _listed(production) == ["app_requests_total", "checkout_latency", "queue_depth"]
        assert production["items"][0] == {
            "name": "app_requests_total",
            "sources": None,
            "tag_keys": None,
            "points": None,
        }
        window = datetime.fromisoformat(production["until"]) - datetime.fromisoformat(
            production["since"]
        )
        assert window == timedelta(hours=24)
        assert _listed(_names(reader, environment="staging")) == ["staging_only"]
        assert _listed(_names(reader, environment="development")) == []
        everywhere = _listed(_names(reader))
        assert {"checkout_latency", "staging_only", "app_requests_total"} <= set(everywhere)

        # A window around the points finds them; one days before them finds nothing (a store
        # looks names up in its index, per day on VictoriaMetrics: a window is no finer).
        around = {
            "environment": "production",
            "since": (BASE - timedelta(minutes=1)).isoformat(),
            "until": (BASE + timedelta(hours=1)).isoformat(),
        }
        assert _listed(_names(reader, **around)) == _listed(production)
        before = {
            "environment": "production",
            "since": (BASE - timedelta(days=10)).isoformat(),
            "until": (BASE - timedelta(days=9)).isoformat(),
        }
        assert _listed(_names(reader, **before)) == []

        # The database still answers when asked, with what only it knows, in a window exactly.
        embedded = _names(reader, environment="production", source="embedded")
        assert embedded["source"] == "embedded"
        assert embedded["items"] == [
            {"name": "checkout.latency", "sources": ["rest"], "tag_keys": ["pod"], "points": 2},
            {"name": "queue.depth", "sources": ["rest"], "tag_keys": ["pod"], "points": 1},
        ]
        later = _names(
            reader,
            environment="production",
            source="embedded",
            since=(BASE + timedelta(minutes=10)).isoformat(),
        )
        assert [(i["name"], i["points"]) for i in later["items"]] == [("checkout.latency", 1)]


def test_a_store_that_cannot_answer_is_a_503_and_the_database_still_answers(
    serve: Callable[..., LiveServer], make_user: Callable[[str, str], str]
) -> None:
    live = serve(prometheus_url=f"http://127.0.0.1:{free_port()}", prometheus_password="hunter2")
    with _client(live, make_user("reader", "viewer")) as reader:
        down = reader.get("/api/v1/metrics/names", params={"environment": "production"})
        embedded = _names(reader, environment="production", source="embedded")
    body = assert_problem(down, 503)
    assert str(body["type"]).endswith("metrics-store-unavailable")
    assert "could not be reached (ConnectError)" in str(body["detail"])
    assert down.headers["Retry-After"] == "10"
    assert "hunter2" not in down.text
    assert embedded["source"] == "embedded"


def test_without_a_store_names_come_from_the_database_and_bad_windows_are_refused(
    serve: Callable[..., LiveServer], make_user: Callable[[str, str], str]
) -> None:
    live = serve()
    with _client(live, make_user("reader", "viewer")) as reader:
        assert _names(reader)["source"] == "embedded"
        for params, where in (
            ({"source": "store"}, "source"),
            ({"since": "2026-01-01T00:00:00"}, "since"),
            ({"since": "2026-01-02T00:00:00Z", "until": "2026-01-01T00:00:00Z"}, "since"),
        ):
            refused = reader.get("/api/v1/metrics/names", params=params)
            assert_problem(refused, 422)
            assert refused.json()["errors"][0]["loc"] == ["query", where], refused.text
