"""PromQL alert rules (issue 23 §1): rules that query the user's own Prometheus-compatible store.
A real Prometheus holds the series (remote-written to it); each series the query answers is an
alert of its own, with the series' labels and the value that fired it. A store that cannot
answer makes the rule erroring and leaves its alerts alone; a query that could never run, or a
server without a store, is refused when the rule is written."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from shipboard.alerting import tasks
from shipboard.core.promql import PromStore, StoreSettings
from tests.support.databases import Database
from tests.support.hostile import ECHO, HostileStore
from tests.support.live import Clients, PrometheusServer
from tests.support.problems import assert_problem
from tests.support.promstore import ProbingProxy, remote_write, store_clients, writer_blocked

QUERY = 'checkout_errors{environment="$environment"}'


def _rule(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "CheckoutErrors",
        "kind": "promql",
        "environment": "production",
        "query": QUERY,
        "op": ">",
        "value": 5,
        "severity": "high",
        **overrides,
    }


@pytest.fixture
def store(prometheus: Callable[..., PrometheusServer]) -> PrometheusServer:
    return prometheus()


@pytest.fixture
def store_admin(db: Database, engine: Engine, store: PrometheusServer) -> Iterator[Any]:
    """An admin client of a Shipboard whose SHIPBOARD_PROMETHEUS_URL is the store."""
    with store_clients(db.url, engine, store.url) as clients, clients.as_role("admin") as admin:
        yield admin


def _evaluate(engine: Engine, url: str, **settings: Any) -> None:
    client = PromStore(StoreSettings(url=url, **settings))
    try:
        assert tasks.evaluate(engine, store=client)
    finally:
        client.close()


def _alerts(admin: Any) -> list[dict[str, Any]]:
    return list(admin.get("/api/v1/alerts").json()["items"])


def _by_route(admin: Any) -> dict[str, dict[str, Any]]:
    return {a["labels"]["route"]: a for a in _alerts(admin)}


def test_each_series_over_the_threshold_fires_and_resolves_when_it_goes_back(
    engine: Engine, store: PrometheusServer, store_admin: Any
) -> None:
    created = store_admin.post("/api/v1/alert-rules", json=_rule(labels={"team": "shop"}))
    assert created.status_code == 201, created.text
    assert created.json()["query"] == QUERY
    assert created.json()["metric"] is None
    start = time.time() - 30
    remote_write(store.url, "checkout_errors", 12, tags={"route": "/pay"}, at=start)
    remote_write(store.url, "checkout_errors", 1, tags={"route": "/cart"}, at=start)
    # Another environment's series is not this rule's.
    remote_write(
        store.url, "checkout_errors", 99, environment="staging", tags={"route": "/pay"}, at=start
    )
    _evaluate(engine, store.url)
    (firing,) = _alerts(store_admin)
    assert firing["state"] == "firing"
    assert firing["value"] == 12
    assert firing["labels"] == {
        "alertname": "CheckoutErrors",
        "environment": "production",
        "severity": "high",
        "team": "shop",
        "route": "/pay",
        "source": "app",
    }
    assert firing["transitions"][-1]["reason"] == "12 > 5 is True"

    remote_write(store.url, "checkout_errors", 1, tags={"route": "/pay"}, at=start + 10)
    remote_write(store.url, "checkout_errors", 40, tags={"route": "/cart"}, at=start + 10)
    _evaluate(engine, store.url)
    alerts = _by_route(store_admin)
    assert alerts["/pay"]["state"] == "resolved"
    assert alerts["/pay"]["value"] == 1
    assert [(t["from"], t["to"]) for t in alerts["/pay"]["transitions"]] == [
        ("inactive", "firing"),
        ("firing", "resolved"),
    ]
    assert alerts["/cart"]["state"] == "firing"
    assert alerts["/cart"]["value"] == 40
    rule = store_admin.get("/api/v1/alert-rules").json()["items"][0]
    assert (rule["health"], rule["last_error"]) == ("ok", None)


def test_without_a_value_every_series_the_query_returns_fires(
    engine: Engine, store: PrometheusServer, store_admin: Any
) -> None:
    rule = _rule(query='checkout_errors{environment="$environment"} > 10', value=None)
    assert store_admin.post("/api/v1/alert-rules", json=rule).status_code == 201
    remote_write(store.url, "checkout_errors", 12, tags={"route": "/pay"}, at=time.time() - 5)
    remote_write(store.url, "checkout_errors", 3, tags={"route": "/cart"}, at=time.time() - 5)
    _evaluate(engine, store.url)
    assert {route: a["value"] for route, a in _by_route(store_admin).items()} == {"/pay": 12}


def test_a_store_that_cannot_answer_makes_the_rule_erroring_and_changes_no_alert(
    engine: Engine, store: PrometheusServer, store_admin: Any
) -> None:
    assert store_admin.post("/api/v1/alert-rules", json=_rule()).status_code == 201
    remote_write(store.url, "checkout_errors", 12, tags={"route": "/pay"}, at=time.time() - 5)
    _evaluate(engine, store.url)
    (before,) = _alerts(store_admin)
    assert before["state"] == "firing"
    store.stop()
    _evaluate(engine, store.url, bearer_token="sekrit-token")
    _evaluate(engine, store.url, username="ops", password="sekrit-password")
    rule = store_admin.get("/api/v1/alert-rules").json()["items"][0]
    assert rule["health"] == "error"
    assert rule["last_error"] == ("the metrics store did not answer (ConnectError)")
    assert "sekrit" not in str(rule)
    (after,) = _alerts(store_admin)
    assert after == before


def test_a_query_that_could_never_run_is_refused_and_nothing_is_stored(
    store_admin: Any,
) -> None:
    for body, message in (
        (_rule(query="sum(checkout_errors"), "not a PromQL query"),
        # promql-parser panics on this one (a Rust PanicException, not an Exception).
        (_rule(query="checkout_errors offset Inf"), "not a PromQL query"),
        (_rule(query='up{version="$version"}'), "unknown variable $version"),
        (_rule(query=None), "a promql rule needs a query"),
        (_rule(metric="errors"), "a promql rule has a query, not a metric"),
        ({**_rule(), "kind": "threshold", "metric": "e"}, "has a metric, not a query"),
    ):
        problem = assert_problem(store_admin.post("/api/v1/alert-rules", json=body), 422)
        assert message in str(problem), problem
    assert store_admin.get("/api/v1/alert-rules").json()["items"] == []


def test_without_a_store_a_promql_rule_is_refused_naming_the_setting(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        problem = assert_problem(admin.post("/api/v1/alert-rules", json=_rule()), 422)
        assert "SHIPBOARD_PROMETHEUS_URL is not set" in str(problem["detail"])
        assert problem["errors"][0]["loc"] == ["body", "kind"]
        applied = admin.post(
            "/api/v1/config/apply", json={"document": {"version": 1, "alert_rules": [_rule()]}}
        )
        assert "SHIPBOARD_PROMETHEUS_URL is not set" in str(assert_problem(applied, 422))
        assert admin.get("/api/v1/alert-rules").json()["items"] == []


def test_the_store_is_asked_while_no_transaction_is_open(
    db: Database, engine: Engine, store: PrometheusServer, store_admin: Any
) -> None:
    assert store_admin.post("/api/v1/alert-rules", json=_rule()).status_code == 201
    remote_write(store.url, "checkout_errors", 12, tags={"route": "/pay"}, at=time.time() - 5)
    proxy = ProbingProxy(store.url, lambda: writer_blocked(db.url))
    try:
        _evaluate(engine, proxy.url)
    finally:
        proxy.stop()
    assert proxy.probes == [None]
    assert [a["state"] for a in _alerts(store_admin)] == ["firing"]


def test_a_hostile_stores_labels_and_errors_are_stored_clean(
    db: Database, engine: Engine, hostile_store: HostileStore
) -> None:
    # An alert keeps its series' labels and a rule its store's error: a NUL in either failed
    # the whole evaluation round on PostgreSQL, and the error could carry the bearer token.
    sample = {"metric": {"route": "/pay\0"}, "value": [1, "12"]}
    hostile_store.answer(
        {"status": "success", "data": {"resultType": "vector", "result": [sample]}}
    )
    with (
        store_clients(db.url, engine, hostile_store.url) as clients,
        clients.as_role("admin") as admin,
    ):
        assert admin.post("/api/v1/alert-rules", json=_rule()).status_code == 201
        _evaluate(engine, hostile_store.url, bearer_token="tok-2c8e51a9")
        (firing,) = _alerts(admin)
        hostile_store.answer({"status": "error", "error": f"bad\0 {ECHO}"}, 422)
        _evaluate(engine, hostile_store.url, bearer_token="tok-2c8e51a9")
        rule = admin.get("/api/v1/alert-rules").json()["items"][0]
    assert firing["labels"]["route"] == "/pay\ufffd"
    assert rule["health"] == "error"
    assert "bad\ufffd " in rule["last_error"]
    assert "Authorization: Bearer ***" in rule["last_error"]
    assert "2c8e51a9" not in str(rule)
