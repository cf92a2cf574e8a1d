"""Regression statistics at their edges, directly (performance/regression.py is pure): empty and
short histories, the window, zero and constant baselines, rates, and how rules are chosen."""

from __future__ import annotations

import math

import pytest

from shipboard.performance.regression import (
    Point,
    Rule,
    evaluate,
    rule_for,
    series_key,
    series_tags,
)


def points(*values: float) -> list[Point]:
    return [Point(v) for v in values]


def test_an_empty_history_or_an_unknown_model_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least the newest"):
        evaluate([], unit="ms", rule=Rule())
    with pytest.raises(ValueError, match="unknown model 'magic'"):
        evaluate(points(1, 2), unit="ms", rule=Rule(model="magic"))


def test_only_the_window_before_the_newest_is_the_baseline() -> None:
    # Old slow results outside the window do not make today's value look like an improvement.
    history = points(*[500] * 30, *[100] * 5, 130)
    rule = Rule(model="percentage", window=5, min_samples=5, percentage=10)
    verdict = evaluate(history, unit="ms", rule=rule)
    assert verdict.baseline == 100
    assert verdict.samples == 5
    assert verdict.status == "regression"
    assert verdict.delta_pct == pytest.approx(30)


def test_the_t_test_window_excludes_the_recent_points() -> None:
    history = points(*[100] * 20, *[100] * 4, 100)
    verdict = evaluate(history, unit="ms", rule=Rule(n=5, window=20))
    assert verdict.samples == 20
    assert (verdict.status, verdict.p_value) == ("ok", 1.0)


@pytest.mark.parametrize(("newest", "status"), [(85.0, "regression"), (95.0, "ok"), (130.0, "ok")])
def test_a_rate_regresses_when_it_falls(newest: float, status: str) -> None:
    history = points(*[100] * 10, newest)
    verdict = evaluate(history, unit="req/s", rule=Rule(model="percentage", percentage=10))
    assert verdict.direction == "higher_is_better"
    assert verdict.status == status


def test_a_zero_baseline_has_no_percentage_but_still_a_direction() -> None:
    rule = Rule(model="percentage", percentage=10)
    worse = evaluate(points(*[0] * 10, 1), unit="errors", rule=rule)
    assert (worse.status, worse.delta_pct) == ("regression", None)
    assert "∞ %" in worse.reason
    better = evaluate(points(*[0] * 10, -1), unit="errors", rule=rule)
    assert better.status == "ok"
    assert "-∞ %" in better.reason
    same = evaluate(points(*[0] * 10, 0), unit="errors", rule=rule)
    assert same.status == "ok"


def test_a_z_score_against_a_constant_window_is_zero_or_infinite() -> None:
    rule = Rule(model="z_score", z=3, min_change_pct=5)
    flat = evaluate(points(*[50] * 10, 50), unit="ms", rule=rule)
    assert flat.status == "ok"
    assert flat.details["z"] == 0
    jump = evaluate(points(*[50] * 10, 60), unit="ms", rule=rule)
    assert jump.status == "regression"
    assert jump.details["z"] is None  # infinite: not a number to store
    assert jump.p_value == 0.0


def test_a_z_score_needs_the_change_to_matter_too() -> None:
    # Four standard deviations of a very quiet series, but only 0.4 % worse.
    history = [Point(100 + (0.1 if i % 2 else -0.1)) for i in range(20)]
    verdict = evaluate([*history, Point(100.4)], unit="ms", rule=Rule(model="z_score", z=3))
    assert verdict.details["z"] > 3
    assert verdict.status == "ok"


def test_a_one_sample_t_test_of_constant_results() -> None:
    on_target = [Point(100, benchmark=100)] * 5
    off_target = [Point(120, benchmark=100)] * 5
    assert evaluate(on_target, unit="ms", rule=Rule()).p_value == 1.0
    verdict = evaluate(off_target, unit="ms", rule=Rule())
    assert (verdict.status, verdict.p_value, verdict.baseline) == ("regression", 0.0, 100)


def test_a_one_sample_t_test_needs_a_few_results() -> None:
    verdict = evaluate([Point(120, benchmark=100)], unit="ms", rule=Rule())
    assert verdict.status == "insufficient_data"
    assert verdict.baseline == 100
    assert not verdict.regressed


def test_a_threshold_names_which_side_it_is_on() -> None:
    below = evaluate([Point(90, threshold=100)], unit="ms", rule=Rule())
    assert (below.status, below.reason) == ("ok", "90 ms is not above the threshold 100")
    rate = evaluate([Point(90, threshold=100)], unit="ops/s", rule=Rule())
    assert rate.reason == "90 ops/s is below the threshold 100"
    assert rate.regressed
    assert rate.details == {"threshold": 100}


def test_a_rules_unset_fields_keep_the_defaults() -> None:
    settings = {"rules": [{"match": "*", "window": None, "model": "z_score"}]}
    assert rule_for(settings, "x") == Rule(model="z_score")


def test_a_named_direction_beats_the_failure_name_heuristic() -> None:
    assert rule_for(None, "errors_total").direction == "lower"
    explicit = {"rules": [{"match": "*", "direction": "higher"}]}
    assert rule_for(explicit, "errors_total").direction == "higher"
    listed = {"higher_is_better": ["error*"], "rules": [{"match": "*", "direction": "lower"}]}
    assert rule_for(listed, "errors_total").direction == "higher"


def test_run_tags_are_not_part_of_a_series() -> None:
    assert series_tags({"version": "1", "commit": "a", "commit_sha": "b", "route": "/"}) == {
        "route": "/"
    }
    assert series_tags(None) == {}
    assert series_key("p95", None) == series_key("p95", {"version": "2"}) == "p95"
    assert series_key("p95", {"b": "1", "a": "2"}) == "p95\x1fa=2\x1fb=1"


def test_every_verdict_is_finite_or_none_where_it_is_stored() -> None:
    rule = Rule(model="z_score")
    verdict = evaluate(points(*[1] * 10, 2), unit="ms", rule=rule)
    for stored in (verdict.baseline, verdict.delta_pct, verdict.p_value, verdict.details["z"]):
        assert stored is None or math.isfinite(stored)
