"""PromQL watch checks (issue 23 §1): a release's verification asks the user's own store. A real
Prometheus holds the metrics (remote-written to it); a release whose query fails its condition
rolls back with the number shown, one whose query passes does not, and a query that could never
run is refused when it is written."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from shipboard.core.promql import PromStore, StoreSettings, check_query
from shipboard.environments.pipeline import WatchCheck
from shipboard.monitoring import remote_write as rw
from shipboard.pipelines.worker import Worker, start_in_thread
from tests.support.factories import pipeline_steps, set_pipeline, start_deployment, wait_final
from tests.support.live import Clients, PrometheusServer, wait_for
from tests.support.problems import assert_problem

QUERY = 'sum(checkout_errors{environment="$environment"})'


def _watch(query: str = QUERY, *, window_s: float = 2.0) -> dict[str, Any]:
    return {
        "window_s": window_s,
        "interval_s": 0.3,
        "failure_limit": 0,
        "checks": [{"name": "errors", "kind": "promql", "query": query, "op": "<", "value": 5}],
    }


def _write(prometheus: PrometheusServer, value: float) -> None:
    import httpx

    series, _ = rw.series_for(
        name="checkout_errors",
        environment="staging",
        source="app",
        tags={},
        samples=[(int(time.time() * 1000), value)],
    )
    answer = httpx.post(
        f"{prometheus.url}/api/v1/write",
        content=rw.encode([series]),
        headers={"Content-Type": rw.CONTENT_TYPE, "Content-Encoding": rw.CONTENT_ENCODING},
        timeout=10,
    )
    assert answer.status_code == 204, answer.text


@pytest.fixture
def store_worker(
    clients: Clients, engine: Engine, prometheus: Callable[..., PrometheusServer]
) -> Iterator[PrometheusServer]:
    """A pipeline worker that asks a real Prometheus."""
    server = prometheus()
    store = PromStore(StoreSettings(url=server.url))
    worker = Worker(
        engine, clients.server.app.state.keyring, poll_s=0.05, lease_s=3, metrics_store=store
    )
    thread, stop = start_in_thread(worker)
    yield server
    stop.set()
    thread.join(timeout=30)
    store.close()


def test_a_release_whose_promql_check_fails_rolls_back_with_the_number(
    clients: Clients, store_worker: PrometheusServer
) -> None:
    _write(store_worker, 12)
    with clients.as_role("admin") as admin:
        set_pipeline(
            admin, "staging", pipeline_steps(("ship", "deploy", "true")), auto_rollback=True
        )
        good = start_deployment(admin, version="1.0.0")
        assert wait_final(admin, good)["status"] == "success"
        set_pipeline(
            admin,
            "staging",
            {**pipeline_steps(("ship", "deploy", "true")), "watch": _watch(window_s=30)},
        )
        bad = start_deployment(admin, version="2.0.0")
        assert wait_final(admin, bad)["status"] == "success"

        def rolled_back() -> dict[str, Any] | None:
            detail = admin.get(f"/api/v1/deployments/{bad}").json()
            return detail if detail["status"] == "rolled_back" else None

        detail = wait_for(rolled_back, timeout=30, interval=0.2)
    failed = [a for a in detail["analysis"] if a.get("check") == "errors"]
    assert failed[-1]["result"] == "Failed"
    assert failed[-1]["value"] == 12
    assert failed[-1]["reason"] == "result = 12; expected < 5"


def test_a_release_whose_promql_check_passes_is_not_rolled_back(
    clients: Clients, store_worker: PrometheusServer
) -> None:
    _write(store_worker, 1)
    with clients.as_role("admin") as admin:
        set_pipeline(
            admin, "staging", {**pipeline_steps(("ship", "deploy", "true")), "watch": _watch()}
        )
        did = start_deployment(admin)
        assert wait_final(admin, did)["status"] == "success"
        detail = wait_for(
            lambda: (
                (d := admin.get(f"/api/v1/deployments/{did}").json())["watch_state"] == "passed"
                and d
            ),
            timeout=30,
        )
    assert detail["status"] == "success"
    results = {a["result"] for a in detail["analysis"] if a.get("check") == "errors"}
    assert results == {"Successful"}


def test_a_query_that_could_never_run_is_refused_on_write(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        for query, message in (
            ("sum(checkout_errors", "not a PromQL query"),
            ('up{v="$release"}', "unknown variable $release"),
        ):
            answer = admin.patch(
                "/api/v1/environments/staging",
                json={
                    "config": {
                        "pipeline": {
                            **pipeline_steps(("ship", "deploy", "true")),
                            "watch": _watch(query),
                        }
                    }
                },
            )
            problem = assert_problem(answer, 422)
            assert message in str(problem)
        stored = admin.get("/api/v1/environments/staging").json()["config"]
    assert "pipeline" not in stored or "watch" not in stored["pipeline"]


def test_check_shapes() -> None:
    check_query('rate(http_requests_total{environment="$environment",version="${version}"}[5m])')
    check_query("up @ $deployment_started_at")
    with pytest.raises(ValueError, match="not a PromQL query"):
        check_query("rate(x[5m]")
    with pytest.raises(ValidationError, match="needs a query"):
        WatchCheck.model_validate({"name": "q", "kind": "promql"})
    with pytest.raises(ValidationError, match="not a metric"):
        WatchCheck.model_validate({"name": "q", "kind": "promql", "query": "up", "metric": "m"})
    with pytest.raises(ValidationError, match="needs a metric"):
        WatchCheck.model_validate({"name": "t", "kind": "threshold"})


def test_a_hanging_store_costs_a_watch_round_one_timeout_not_one_per_check(
    clients: Clients, engine: Engine
) -> None:
    """Five PromQL checks, a store that accepts and never answers (1 s timeout): the round ends
    in about one timeout, each check Inconclusive saying why, instead of five timeouts."""
    import sqlalchemy as sa

    from shipboard.core.time import utcnow
    from shipboard.db.engine import system_transaction
    from shipboard.deployments.models import DeploymentRun
    from shipboard.pipelines.watch import watch_due
    from tests.support.promstore import HangingStore

    checks = [
        {"name": f"errors-{k}", "kind": "promql", "query": QUERY, "op": "<", "value": 5}
        for k in range(5)
    ]
    hanging = HangingStore()
    store = PromStore(StoreSettings(url=hanging.url, timeout_s=1.0))
    # A worker runs the deployment to its watch, then stops: the timed round is the only one.
    worker = Worker(engine, clients.server.app.state.keyring, poll_s=0.05, metrics_store=store)
    thread, stop = start_in_thread(worker)
    try:
        with clients.as_role("admin") as admin:
            set_pipeline(
                admin,
                "staging",
                {
                    **pipeline_steps(("ship", "deploy", "true")),
                    "watch": {"window_s": 3600, "interval_s": 600, "checks": checks},
                },
            )
            did = start_deployment(admin)
            assert wait_final(admin, did)["status"] == "success"
        stop.set()
        thread.join(timeout=30)
        with system_transaction(engine) as session:
            session.execute(
                sa.update(DeploymentRun)
                .where(DeploymentRun.watch_state == "running")
                .values(watch_next_at=utcnow())
            )
        started = time.monotonic()
        assert watch_due(engine, store=store) == 1
        took = time.monotonic() - started
    finally:
        stop.set()
        store.close()
        hanging.stop()
    assert took < 3.0, f"the round took {took:.1f} s for five checks of a 1 s store"
    with clients.as_role("admin") as admin:
        analysis = admin.get(f"/api/v1/deployments/{did}").json()["analysis"]
    last = {a["check"]: a for a in analysis if a.get("check", "").startswith("errors-")}
    assert set(last) == {f"errors-{k}" for k in range(5)}
    assert {a["result"] for a in last.values()} == {"Inconclusive"}
    # The round's deadline and the client's read timeout are both 1 s: either says why.
    assert all(
        "no answer within" in a["reason"] or "did not answer" in a["reason"] for a in last.values()
    ), last


def test_an_infinite_result_fails_the_check_and_is_stored_on_either_database(
    clients: Clients, store_worker: PrometheusServer
) -> None:
    # errors / requests over a quiet minute is +Inf in a real Prometheus; the verdict's value
    # went into a jsonb column that holds no Infinity, and the watch round failed on PostgreSQL.
    _write(store_worker, math.inf)
    with clients.as_role("admin") as admin:
        set_pipeline(
            admin, "staging", pipeline_steps(("ship", "deploy", "true")), auto_rollback=True
        )
        good = start_deployment(admin, version="1.0.0")
        assert wait_final(admin, good)["status"] == "success"
        set_pipeline(
            admin,
            "staging",
            {**pipeline_steps(("ship", "deploy", "true")), "watch": _watch(window_s=30)},
        )
        did = start_deployment(admin, version="2.0.0")
        assert wait_final(admin, did)["status"] == "success"

        def rolled_back() -> dict[str, Any] | None:
            detail = admin.get(f"/api/v1/deployments/{did}").json()
            return detail if detail["status"] == "rolled_back" else None

        detail = wait_for(rolled_back, timeout=30, interval=0.2)
    failed = [a for a in detail["analysis"] if a.get("check") == "errors"]
    assert failed[-1]["result"] == "Failed"
    assert failed[-1]["reason"] == "result = inf; expected < 5"
    assert "value" not in failed[-1]
