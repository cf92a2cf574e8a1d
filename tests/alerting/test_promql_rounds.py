"""A round of PromQL alert rules (issue 23 §1) asks the store its queries together, a few at a
time, and within one store timeout: a store that hangs costs the round about one timeout however
many rules there are, and every rule it left without an answer says why; against a real
Prometheus or VictoriaMetrics, many rules in one round all come out right."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from shipboard.alerting import tasks
from shipboard.core.promql import ROUND_WORKERS, PromStore, StoreSettings
from tests.support.databases import Database
from tests.support.promstore import HangingStore, Store, remote_write, store_clients

RULES = 30


@pytest.fixture
def store_admin(db: Database, engine: Engine, store: Store) -> Iterator[Any]:
    with store_clients(db.url, engine, store.url) as clients, clients.as_role("admin") as admin:
        yield admin


def _rule(index: int, **overrides: Any) -> dict[str, Any]:
    return {
        "name": f"Route{index:02d}Errors",
        "kind": "promql",
        "environment": "production",
        "query": f'checkout_errors{{environment="$environment",route="/r{index:02d}"}}',
        "op": ">",
        "value": 10,
        "severity": "high",
        **overrides,
    }


def _evaluate(engine: Engine, settings: StoreSettings) -> float:
    """One round against the store ``settings`` name; how long it took, in seconds."""
    client = PromStore(settings)
    try:
        started = time.monotonic()
        assert tasks.evaluate(engine, store=client)
        return time.monotonic() - started
    finally:
        client.close()


def _rules(admin: Any) -> dict[str, dict[str, Any]]:
    answer = admin.get("/api/v1/alert-rules", params={"limit": 200})
    return {r["name"]: r for r in answer.json()["items"]}


def _alerts(admin: Any) -> list[dict[str, Any]]:
    return list(admin.get("/api/v1/alerts", params={"limit": 200}).json()["items"])


@pytest.mark.parametrize("store", ["prometheus"], indirect=True)
def test_a_store_that_hangs_costs_the_round_one_timeout_and_every_rule_says_why(
    engine: Engine, store: Store, store_admin: Any
) -> None:
    for index in range(RULES):
        created = store_admin.post("/api/v1/alert-rules", json=_rule(index))
        assert created.status_code == 201, created.text
    remote_write(store.url, "checkout_errors", 12, tags={"route": "/r00"}, at=time.time() - 5)
    _evaluate(engine, StoreSettings(url=store.url))
    (before,) = _alerts(store_admin)
    assert before["state"] == "firing"

    hanging = HangingStore()
    try:
        # One after another, the round would take RULES timeouts (30 s).
        took = _evaluate(engine, StoreSettings(url=hanging.url, timeout_s=1.0))
    finally:
        hanging.stop()
    assert took < 2.5, took
    assert hanging.peak == ROUND_WORKERS  # asked together, a few at a time
    rules = _rules(store_admin)
    assert len(rules) == RULES
    for rule in rules.values():
        assert rule["health"] == "error", rule
        assert rule["last_error"] in (
            "the metrics store: no answer within the round's 1 s (the store is slow or hangs; "
            f"{RULES} queries shared {ROUND_WORKERS} workers)",
            "the metrics store did not answer (ReadTimeout)",
        ), rule["last_error"]
    assert _alerts(store_admin) == [before]


def test_many_rules_in_one_round_each_fire_when_their_condition_holds(
    engine: Engine, store: Store, store_admin: Any
) -> None:
    for index in range(RULES):
        created = store_admin.post("/api/v1/alert-rules", json=_rule(index))
        assert created.status_code == 201, created.text
    at = time.time() - 30
    for index in range(RULES):
        # Rule i's series holds i: the rules past 10 fire, the others stay quiet.
        remote_write(store.url, "checkout_errors", index, tags={"route": f"/r{index:02d}"}, at=at)
    store.flush()
    _evaluate(engine, StoreSettings(url=store.url))
    firing = {a["labels"]["alertname"]: a for a in _alerts(store_admin)}
    assert sorted(firing) == [f"Route{i:02d}Errors" for i in range(11, RULES)]
    for name, alert in firing.items():
        assert alert["state"] == "firing"
        assert alert["value"] == int(name[5:7])
        assert alert["labels"]["route"] == f"/r{name[5:7]}"
    for rule in _rules(store_admin).values():
        assert (rule["health"], rule["last_error"]) == ("ok", None), rule
