"""Promotion checks (issue 23 §1): `config.promotion_checks` gate a deployment on queries of the
user's own store. A real VictoriaMetrics holds the series (remote-written to it); a check passes
or blocks on its numbers, which the gate keeps; a store that cannot answer blocks; the store is
asked while Shipboard holds no transaction; a query that could never run, or checks on a server
without a store, are refused when written. The gate itself is tested directly in
test_gates.py."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import Engine

from shipboard.db.engine import system_transaction
from shipboard.environments.models import Environment
from tests.support.databases import Database
from tests.support.hostile import ECHO, HostileStore
from tests.support.live import Clients, LiveServer, VictoriaMetrics
from tests.support.problems import assert_problem
from tests.support.promstore import ProbingProxy, remote_write, store_clients, writer_blocked

QUERY = 'sum(checkout_errors{environment="$environment", version="$version"})'
CHECK = {"name": "checkout errors", "query": QUERY, "op": "<", "value": 5}
GATE = "promotion_check:checkout errors"
DEPLOY = {"environment": "staging", "version": "2.0.0", "commit_sha": "abcdef1"}


def _errors(vm: VictoriaMetrics, value: float, version: str = "2.0.0") -> None:
    remote_write(
        vm.url,
        "checkout_errors",
        value,
        environment="staging",
        tags={"version": version},
        at=time.time() - 5,
    )
    vm.flush()


def _set_checks(admin: Any, checks: list[dict[str, Any]] | None) -> Any:
    return admin.patch(
        "/api/v1/environments/staging", json={"config": {"promotion_checks": checks}}
    )


@pytest.fixture
def store_admin(db: Database, engine: Engine, victoria_metrics: VictoriaMetrics) -> Iterator[Any]:
    """An admin client of a Shipboard whose SHIPBOARD_PROMETHEUS_URL is VictoriaMetrics, with
    the check set on staging."""
    with (
        store_clients(db.url, engine, victoria_metrics.url) as clients,
        clients.as_role("admin") as admin,
    ):
        assert _set_checks(admin, [CHECK]).status_code == 200
        yield admin


def test_a_check_that_holds_passes_and_keeps_its_numbers(
    victoria_metrics: VictoriaMetrics, store_admin: Any
) -> None:
    _errors(victoria_metrics, 1)
    _errors(victoria_metrics, 40, version="1.0.0")  # another release's errors are not counted
    created = store_admin.post("/api/v1/deployments", json=DEPLOY)
    assert created.status_code == 201, created.text
    gate = {g["gate"]: g for g in created.json()["gates"]}[GATE]
    assert gate["passed"]
    assert gate["reason"] == "checkout errors: result 1; < 5 holds"
    assert gate["measured"] == {
        "query": 'sum(checkout_errors{environment="staging", version="2.0.0"})',
        "condition": "< 5",
        "values": [1],
        "series": [{"labels": {}, "value": 1}],
        "series_count": 1,
    }


def test_a_check_that_fails_blocks_with_its_numbers(
    victoria_metrics: VictoriaMetrics, store_admin: Any
) -> None:
    _errors(victoria_metrics, 12)
    body = assert_problem(store_admin.post("/api/v1/deployments", json=DEPLOY), 422)
    assert body["errors"] == [
        {"loc": ["gates", GATE], "msg": "checkout errors: result 12; < 5 does not hold"}
    ]
    gate = {g["gate"]: g for g in body["gates"]}[GATE]  # type: ignore[union-attr]
    assert gate["measured"]["values"] == [12]
    assert store_admin.get("/api/v1/deployments").json()["items"] == []


def test_no_answer_blocks(store_admin: Any) -> None:
    body = assert_problem(store_admin.post("/api/v1/deployments", json=DEPLOY), 422)
    assert body["errors"] == [
        {"loc": ["gates", GATE], "msg": "checkout errors: the query returned no value"}
    ]


def test_a_store_that_cannot_answer_blocks_and_says_why(
    victoria_metrics: VictoriaMetrics, store_admin: Any
) -> None:
    _errors(victoria_metrics, 1)
    victoria_metrics.stop()
    body = assert_problem(store_admin.post("/api/v1/deployments", json=DEPLOY), 422)
    assert body["errors"] == [
        {
            "loc": ["gates", GATE],
            "msg": "checkout errors: cannot check: the metrics store did not answer (ConnectError)",
        }
    ]


def test_a_forced_deployment_does_not_ask_the_store(
    victoria_metrics: VictoriaMetrics, store_admin: Any
) -> None:
    victoria_metrics.stop()
    forced = store_admin.post("/api/v1/deployments", json={**DEPLOY, "force": True})
    assert forced.status_code == 201, forced.text
    assert forced.json()["gates"] == []


def test_the_store_is_asked_while_no_transaction_is_open(
    db: Database, engine: Engine, victoria_metrics: VictoriaMetrics
) -> None:
    _errors(victoria_metrics, 1)
    proxy = ProbingProxy(victoria_metrics.url, lambda: writer_blocked(db.url))
    try:
        with (
            store_clients(db.url, engine, proxy.url) as clients,
            clients.as_role("admin") as admin,
        ):
            assert _set_checks(admin, [CHECK]).status_code == 200
            created = admin.post("/api/v1/deployments", json=DEPLOY)
    finally:
        proxy.stop()
    assert created.status_code == 201, created.text
    assert proxy.probes == [None]


def test_a_query_that_could_never_run_is_refused_and_nothing_is_stored(
    store_admin: Any,
) -> None:
    for check, message in (
        ({**CHECK, "query": "sum(checkout_errors"}, "not a PromQL query"),
        ({**CHECK, "query": "checkout_errors offset Inf"}, "not a PromQL query"),
        ({**CHECK, "query": 'up{id="$deployment_id"}'}, "unknown variable $deployment_id"),
        ({**CHECK, "value": None}, "value"),
        ({k: v for k, v in CHECK.items() if k != "op"}, "op"),
    ):
        problem = assert_problem(_set_checks(store_admin, [check]), 422)
        assert message in str(problem), problem
    problem = assert_problem(_set_checks(store_admin, [CHECK, CHECK]), 422)
    assert "promotion check names must be unique: checkout errors" in str(problem)
    stored = store_admin.get("/api/v1/environments/staging").json()["config"]
    assert stored["promotion_checks"] == [CHECK]


def test_without_a_store_checks_are_refused_and_stored_ones_block(
    clients: Clients, engine: Engine
) -> None:
    with clients.as_role("admin") as admin:
        problem = assert_problem(_set_checks(admin, [CHECK]), 422)
        assert "SHIPBOARD_PROMETHEUS_URL is not set" in str(problem["detail"])
        assert problem["errors"][0]["loc"] == ["body", "config", "promotion_checks"]  # type: ignore[index]
        domain = admin.get("/api/v1/environments/staging").json()["domain"]
        environment = {"domain": domain, "config": {"promotion_checks": [CHECK]}}
        applied = admin.post(
            "/api/v1/config/apply",
            json={"document": {"version": 1, "environments": {"staging": environment}}},
        )
        assert "SHIPBOARD_PROMETHEUS_URL is not set" in str(assert_problem(applied, 422))
        assert "promotion_checks" not in admin.get("/api/v1/environments/staging").json()["config"]
        # Stored while a store was configured, then the setting went away: they block.
        with system_transaction(engine) as session:
            staging = session.get(Environment, "staging")
            assert staging is not None
            staging.config = {**staging.config, "promotion_checks": [CHECK]}
        body = assert_problem(admin.post("/api/v1/deployments", json=DEPLOY), 422)
        assert body["errors"] == [
            {
                "loc": ["gates", GATE],
                "msg": "checkout errors: cannot check: SHIPBOARD_PROMETHEUS_URL is not set",
            }
        ]
        # An unrelated change still goes through with the stored checks in place.
        assert (
            admin.patch(
                "/api/v1/environments/staging", json={"config": {"api_rate_limit": 10}}
            ).status_code
            == 200
        )


def test_a_hanging_store_costs_the_checks_one_timeout_not_one_per_check() -> None:
    """Five checks against a store that accepts and never answers (1 s timeout): all are asked
    at once, each answer says why it is missing, and the create waits about one timeout."""
    from shipboard.core.promql import PromStore, StoreSettings
    from shipboard.core.time import utcnow
    from shipboard.deployments.promotion import Ask, ask_all
    from tests.support.promstore import HangingStore

    hanging = HangingStore()
    store = PromStore(StoreSettings(url=hanging.url, timeout_s=1.0))
    try:
        started = time.monotonic()
        answers = ask_all(store, [Ask(f"check {k}", "sum(up)") for k in range(5)], at=utcnow())
        took = time.monotonic() - started
    finally:
        store.close()
        hanging.stop()
    assert took < 3.0, f"five checks of a 1 s store took {took:.1f} s"
    assert set(answers) == {f"check {k}" for k in range(5)}
    for query, answer in answers.values():
        assert query == "sum(up)"
        # The round's deadline and the client's read timeout are both 1 s: either says why.
        assert isinstance(answer, str), answer
        assert "no answer within" in answer or "did not answer" in answer, answer


def test_a_hostile_store_can_neither_fail_the_create_nor_read_its_credentials(
    serve: Callable[..., LiveServer],
    make_user: Callable[[str, str], str],
    hostile_store: HostileStore,
) -> None:
    # A passing check keeps the series' labels with the deployment: a NUL in one was a 500 on
    # PostgreSQL. A refusal echoing the request's headers must not show the token.
    sample = {"metric": {"pod": "web\0-1"}, "value": [1, "1"]}
    vector = {"resultType": "vector", "result": [sample]}
    hostile_store.answer({"status": "success", "data": vector})
    live = serve(prometheus_url=hostile_store.url, prometheus_bearer_token="tok-0d9e7f31")
    with httpx.Client(
        base_url=live.base_url,
        headers={"Authorization": f"Bearer {make_user('operator', 'admin')}"},
        timeout=30,
    ) as admin:
        assert _set_checks(admin, [CHECK]).status_code == 200
        created = admin.post("/api/v1/deployments", json=DEPLOY)
        hostile_store.answer({"status": "error", "error": f"denied: {ECHO}"}, 503)
        refused = admin.post("/api/v1/deployments", json={**DEPLOY, "version": "2.0.1"})
    assert created.status_code == 201, created.text
    gate = {g["gate"]: g for g in created.json()["gates"]}[GATE]
    assert gate["measured"]["series"] == [{"labels": {"pod": "web\ufffd-1"}, "value": 1}]
    (error,) = assert_problem(refused, 422)["errors"]  # type: ignore[misc]
    assert "Authorization: Bearer ***" in error["msg"]
    assert "0d9e7f31" not in refused.text
