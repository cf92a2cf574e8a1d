"""The promotion gates, directly: facts in, results with reasons out. No database, no HTTP."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from shipboard.deployments import gates

# A Thursday, 15:30 UTC.
NOW = datetime(2026, 12, 3, 15, 30, tzinfo=UTC)


def facts(environment: str = "staging", **changes: Any) -> gates.GateFacts:
    base = gates.GateFacts(
        environment=environment,
        version="1.2.3",
        commit_sha="abc1234",
        features={},
        freeze_windows=[],
        now=NOW,
        staging_success=False,
        unresolved_critical=0,
    )
    return replace(base, **changes)


def by_gate(results: list[gates.GateResult]) -> dict[str, gates.GateResult]:
    return {r.gate: r for r in results}


def test_staging_with_nothing_set_passes_every_gate_it_evaluates() -> None:
    results = gates.evaluate(facts())
    assert [r.gate for r in results] == [
        "deploy_freeze",
        "freeze_window",
        "performance_regressions",
    ]
    assert all(r.passed for r in results)


def test_production_requires_staging_success_and_no_critical_findings_by_default() -> None:
    results = by_gate(gates.evaluate(facts("production", unresolved_critical=2)))
    assert not results["require_staging_success"].passed
    assert "never succeeded in staging" in results["require_staging_success"].reason
    assert not results["block_on_critical_findings"].passed
    assert results["block_on_critical_findings"].measured == {"unresolved_critical": 2}


def test_production_defaults_can_be_turned_off() -> None:
    off = {"require_staging_success": False, "block_on_critical_findings": False}
    results = by_gate(gates.evaluate(facts("production", features=off, unresolved_critical=2)))
    assert "require_staging_success" not in results
    assert "block_on_critical_findings" not in results


def test_staging_success_passes_its_gate() -> None:
    results = by_gate(gates.evaluate(facts("production", staging_success=True)))
    assert results["require_staging_success"].passed
    assert "succeeded in staging" in results["require_staging_success"].reason


def test_deploy_freeze_blocks() -> None:
    result = by_gate(gates.evaluate(facts(features={"deploy_freeze": True})))["deploy_freeze"]
    assert not result.passed
    assert result.reason == "deploy freeze is on"


def test_overdue_high_findings_block_only_when_the_feature_is_on() -> None:
    assert "block_on_overdue_high" not in by_gate(gates.evaluate(facts(overdue_high=3)))
    on = facts(features={"block_on_overdue_high": True}, overdue_high=3)
    result = by_gate(gates.evaluate(on))["block_on_overdue_high"]
    assert not result.passed
    assert result.measured == {"overdue_high": 3}


def test_open_regressions_block_and_are_named() -> None:
    result = by_gate(gates.evaluate(facts(regressions=["api-latency", "checkout"])))[
        "performance_regressions"
    ]
    assert not result.passed
    assert result.reason == "open regressions in staging: api-latency, checkout"


WEEKDAYS_AT_15 = {"cron": "0 15 * * 1-5", "duration_minutes": 60, "timezone": "UTC"}


def test_inside_a_freeze_window_blocks_until_its_end() -> None:
    result = by_gate(gates.evaluate(facts(freeze_windows=[WEEKDAYS_AT_15])))["freeze_window"]
    assert not result.passed
    assert "until 2026-12-03T16:00:00+00:00" in result.reason
    assert result.measured["window"]["started_at"] == "2026-12-03T15:00:00+00:00"


def test_outside_every_freeze_window_passes() -> None:
    later = facts(freeze_windows=[WEEKDAYS_AT_15], now=NOW.replace(hour=16, minute=0))
    result = by_gate(gates.evaluate(later))["freeze_window"]
    assert result.passed
    assert result.reason == "outside every freeze window"


def test_freeze_windows_are_evaluated_in_their_own_time_zone() -> None:
    # 15:30 UTC is 16:30 in Berlin (winter): inside 16:00-17:00 local, outside 15:00-16:00 local.
    berlin = {"cron": "0 16 * * *", "duration_minutes": 60, "timezone": "Europe/Berlin"}
    assert gates.active_freeze([berlin], NOW) is not None
    assert gates.active_freeze([{**berlin, "cron": "0 15 * * *"}], NOW) is None


def test_a_window_that_cannot_be_evaluated_blocks() -> None:
    broken = {"cron": "0 15 * * *", "duration_minutes": "soon"}
    result = by_gate(gates.evaluate(facts(freeze_windows=[broken])))["freeze_window"]
    assert not result.passed
    assert "cannot evaluate config.freeze_windows" in result.reason


def test_invalid_stored_configuration_blocks_and_names_what_is_wrong() -> None:
    problems = [{"loc": ["config", "freeze_windows", 0, "timezone"], "msg": "unknown time zone"}]
    results = by_gate(gates.evaluate(facts(config_problems=problems)))
    assert not results["configuration"].passed
    assert "config.freeze_windows[0].timezone: unknown time zone" in results["configuration"].reason
    assert "shipboard env set" in results["configuration"].reason
    # The freeze windows themselves cannot be trusted either.
    assert not results["freeze_window"].passed


def test_problem_text_lists_five_and_counts_the_rest() -> None:
    problems = [{"loc": ["config", f"k{i}"], "msg": "bad"} for i in range(7)]
    reason = by_gate(gates.evaluate(facts(config_problems=problems)))["configuration"].reason
    assert "config.k4: bad" in reason
    assert "config.k5" not in reason
    assert "(and 2 more)" in reason


def test_freezes_are_the_gates_a_rollback_passes() -> None:
    results = gates.freezes(facts("production", features={"deploy_freeze": True}))
    assert [(r.gate, r.passed) for r in results] == [
        ("deploy_freeze", False),
        ("freeze_window", True),
    ]


@pytest.mark.parametrize(
    ("environment", "features", "name", "expected"),
    [
        ("production", {}, "require_staging_success", True),
        ("production", {}, "block_on_critical_findings", True),
        ("production", {}, "deploy_freeze", False),
        ("staging", {}, "require_staging_success", False),
        ("staging", {"deploy_freeze": True}, "deploy_freeze", True),
        ("production", {"require_staging_success": False}, "require_staging_success", False),
    ],
)
def test_feature_defaults(
    environment: str, features: dict[str, bool], name: str, expected: bool
) -> None:
    assert gates.feature(facts(environment, features=features), name) is expected


def test_result_as_dict_is_what_a_run_stores() -> None:
    result = gates.GateResult("deploy_freeze", True, "no deploy freeze")
    assert result.as_dict() == {
        "gate": "deploy_freeze",
        "passed": True,
        "reason": "no deploy freeze",
        "measured": {},
    }


# --- promotion checks (config.promotion_checks: the metrics store's answers) --------------------

QUERY = 'sum(rate(errors{environment="staging"}[5m]))'


def store_check(answer: Any, op: str = "<", value: float = 5) -> gates.GateResult:
    check = gates.StoreCheck("error rate", QUERY, op, value, answer)
    (result,) = [
        r
        for r in gates.evaluate(facts(store_checks=[check]))
        if r.gate.startswith("promotion_check:")
    ]
    return result


def test_a_promotion_check_passes_with_the_number_behind_it() -> None:
    result = store_check([({}, 0.25)])
    assert result.gate == "promotion_check:error rate"
    assert result.passed
    assert result.reason == "error rate: result 0.25; < 5 holds"
    assert result.measured == {
        "query": QUERY,
        "condition": "< 5",
        "values": [0.25],
        "series": [{"labels": {}, "value": 0.25}],
        "series_count": 1,
    }


def test_a_promotion_check_blocks_when_one_series_fails_and_names_it() -> None:
    result = store_check([({"route": "/cart"}, 1.0), ({"route": "/pay"}, 9.0)])
    assert not result.passed
    assert result.reason == 'error rate: 1 of 2 series not < 5: {route="/pay"} = 9'
    assert result.measured["values"] == [1.0, 9.0]


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        ([], "error rate: the query returned no value"),
        (
            "the metrics store: it is down",
            "error rate: cannot check: the metrics store: it is down",
        ),
        ([({}, float("nan"))], "error rate: result nan; < 5 does not hold"),
    ],
)
def test_a_promotion_check_without_a_usable_answer_blocks(answer: Any, reason: str) -> None:
    result = store_check(answer)
    assert (result.passed, result.reason) == (False, reason)
    assert result.measured["query"] == QUERY


def test_a_promotion_check_lists_twenty_series_and_counts_them_all() -> None:
    result = store_check([({"i": str(i)}, 1.0) for i in range(30)])
    assert result.passed
    assert result.reason == "error rate: all 30 series < 5"
    assert (len(result.measured["series"]), result.measured["series_count"]) == (20, 30)
