"""Post-deploy analysis: measurements and verdicts (pure), and the watch end to end."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from shipboard.db.engine import transaction
from shipboard.monitoring.schemas import MonitoringMetricCreate
from shipboard.monitoring.service import ingest_metrics
from shipboard.pipelines import analysis
from tests.support.factories import pipeline_steps, set_pipeline, start_deployment, wait_final
from tests.support.live import Clients, wait_for


def test_threshold_measurements() -> None:
    ok = analysis.threshold("errors", [0.01, 0.02, 0.03], aggregate="avg", op="<", value=0.05)
    bad = analysis.threshold("errors", [0.1, 0.2], aggregate="max", op="<", value=0.05)
    none = analysis.threshold("errors", [], aggregate="avg", op="<", value=0.05)
    assert (ok.result, ok.value, ok.samples) == ("Successful", 0.02, 3)
    assert (bad.result, bad.value) == ("Failed", 0.2)
    assert "expected < 0.05" in bad.reason
    assert none.result == "Inconclusive"


def test_compare_detects_a_significant_bad_shift_only() -> None:
    rng = random.Random(7)
    before = [100 + rng.gauss(0, 3) for _ in range(40)]
    worse = [130 + rng.gauss(0, 3) for _ in range(40)]
    same = [100 + rng.gauss(0, 3) for _ in range(40)]
    better = [70 + rng.gauss(0, 3) for _ in range(40)]
    kwargs: dict[str, Any] = {"direction": "increase", "min_effect": 0.1, "alpha": 0.05}
    failed = analysis.compare("latency", before, worse, **kwargs)
    assert failed.result == "Failed"
    assert failed.p_value is not None
    assert failed.p_value < 0.001
    assert failed.effect is not None
    assert 0.25 < failed.effect < 0.35
    assert analysis.compare("latency", before, same, **kwargs).result == "Successful"
    assert analysis.compare("latency", before, better, **kwargs).result == "Successful"
    tiny = [101 + rng.gauss(0, 0.5) for _ in range(40)]
    steady = [100 + rng.gauss(0, 0.5) for _ in range(40)]
    # Significant but smaller than the minimum effect: not a failure.
    assert analysis.compare("latency", steady, tiny, **kwargs).result == "Successful"
    assert analysis.compare("latency", before[:2], worse, **kwargs).result == "Inconclusive"


def test_verdict_counts_failures_against_the_limit() -> None:
    failed = analysis.Measurement("c", "Failed", "r")
    fine = analysis.Measurement("c", "Successful", "r")
    unknown = analysis.Measurement("c", "Inconclusive", "r")
    assert analysis.verdict([fine, unknown], failure_limit=0)
    assert not analysis.verdict([fine, failed], failure_limit=0)
    assert analysis.verdict([failed], failure_limit=1)
    assert not analysis.verdict([failed, {"result": "Failed"}], failure_limit=1)


def _push(engine: Engine, name: str, values: list[float], *, at: datetime) -> None:
    with transaction(engine) as session:
        ingest_metrics(
            session,
            metrics=[
                MonitoringMetricCreate(
                    name=name,
                    value=v,
                    timestamp=at + timedelta(milliseconds=i),
                    environment="staging",
                    source="application",
                )
                for i, v in enumerate(values)
            ],
        )


WATCH = {
    "window_s": 1.5,
    "interval_s": 0.3,
    "failure_limit": 0,
    "checks": [
        {
            "name": "error rate",
            "kind": "threshold",
            "metric": "http_error_rate",
            "aggregate": "avg",
            "op": "<",
            "value": 0.05,
        },
    ],
}


def test_failing_watch_rolls_back_with_numbers(
    clients: Clients, worker: Any, engine: Engine
) -> None:
    with clients.as_role("admin") as admin:
        set_pipeline(
            admin, "staging", pipeline_steps(("ship", "deploy", "true")), auto_rollback=True
        )
        good = start_deployment(admin, version="1.0.0")
        assert wait_final(admin, good)["status"] == "success"
        set_pipeline(
            admin, "staging", {**pipeline_steps(("ship", "deploy", "true")), "watch": WATCH}
        )
        bad = start_deployment(admin, version="2.0.0")
        assert wait_final(admin, bad)["status"] == "success"
        _push(engine, "http_error_rate", [0.3, 0.4, 0.5], at=datetime.now(UTC))

        def rolled_back() -> dict[str, Any] | None:
            detail = admin.get(f"/api/v1/deployments/{bad}").json()
            return detail if detail["status"] == "rolled_back" else None

        detail = wait_for(rolled_back, timeout=20)
    assert detail["watch_state"] == "failed"
    failures = [
        a for a in detail["analysis"] if a.get("kind") == "watch" and a["result"] == "Failed"
    ]
    assert failures[0]["check"] == "error rate"
    assert failures[0]["value"] == pytest.approx(0.4)
    assert "expected < 0.05" in failures[0]["reason"]


def test_quiet_watch_passes_at_the_end_of_its_window(clients: Clients, worker: Any) -> None:
    with clients.as_role("admin") as admin:
        set_pipeline(
            admin, "staging", {**pipeline_steps(("ship", "deploy", "true")), "watch": WATCH}
        )
        did = start_deployment(admin)
        assert wait_final(admin, did)["status"] == "success"
        started = time.monotonic()
        detail = wait_for(
            lambda: (
                (d := admin.get(f"/api/v1/deployments/{did}").json())["watch_state"] == "passed"
                and d
            ),
            timeout=20,
        )
    assert time.monotonic() - started >= 1.0
    assert detail["status"] == "success"
    assert {a["result"] for a in detail["analysis"] if a.get("kind") == "watch"} == {"Inconclusive"}
