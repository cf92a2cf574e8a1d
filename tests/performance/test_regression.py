"""Regression detection on synthetic series with a fixed seed (pure, no database)."""

from __future__ import annotations

import random

import pytest

from shipboard.performance.regression import (
    Point,
    Rule,
    direction_of,
    evaluate,
    rule_for,
    series_key,
)


def normal(rng: random.Random, mean: float, sd: float, n: int) -> list[Point]:
    return [Point(rng.gauss(mean, sd)) for _ in range(n)]


@pytest.fixture
def rng() -> random.Random:
    return random.Random(20261126)


def test_a_ten_percent_shift_is_found(rng: random.Random) -> None:
    history = normal(rng, 100, 2, 20) + normal(rng, 110, 2, 5)
    verdict = evaluate(history, unit="ms", rule=Rule())
    assert verdict.status == "regression"
    assert verdict.model == "t_test"
    assert verdict.p_value is not None
    assert verdict.p_value < 0.01
    assert verdict.delta_pct == pytest.approx(10, abs=2.5)
    assert verdict.baseline == pytest.approx(100, abs=2)
    assert verdict.samples == 20


def test_noise_with_the_same_mean_is_not_a_regression(rng: random.Random) -> None:
    for _ in range(50):
        history = normal(rng, 100, 5, 25)
        assert evaluate(history, unit="ms", rule=Rule()).status == "ok"


def test_a_significant_but_tiny_shift_is_not_a_regression(rng: random.Random) -> None:
    # p is minute (sd 0.1) but the mean moved 2 %: below min_change_pct.
    history = normal(rng, 100, 0.1, 20) + normal(rng, 102, 0.1, 5)
    verdict = evaluate(history, unit="ms", rule=Rule())
    assert verdict.p_value is not None
    assert verdict.p_value < 1e-6
    assert verdict.status == "ok"


def test_an_improvement_is_not_a_regression(rng: random.Random) -> None:
    history = normal(rng, 100, 2, 20) + normal(rng, 80, 2, 5)
    assert evaluate(history, unit="ms", rule=Rule()).status == "ok"


def test_rates_regress_downward(rng: random.Random) -> None:
    slower = normal(rng, 1000, 20, 20) + normal(rng, 880, 20, 5)
    faster = normal(rng, 1000, 20, 20) + normal(rng, 1120, 20, 5)
    assert evaluate(slower, unit="ops/s", rule=Rule()).status == "regression"
    assert evaluate(faster, unit="ops/s", rule=Rule()).status == "ok"
    # The same numbers in a lower-is-better unit read the other way round.
    assert evaluate(faster, unit="ms", rule=Rule()).status == "regression"
    assert direction_of("req/s", Rule()) == "higher_is_better"
    assert direction_of("%", Rule()) == "higher_is_better"
    assert direction_of("ms", Rule(direction="higher")) == "higher_is_better"


def test_an_explicit_threshold_wins_over_the_statistics(rng: random.Random) -> None:
    noise = normal(rng, 100, 2, 24)
    past = [*noise, Point(104, threshold=103)]
    verdict = evaluate(past, unit="ms", rule=Rule())
    assert (verdict.status, verdict.model) == ("regression", "threshold")
    shifted = normal(rng, 100, 2, 20) + normal(rng, 110, 2, 4)
    within = [*shifted, Point(111, threshold=120)]
    assert evaluate(within, unit="ms", rule=Rule()).status == "ok"
    # A rate's threshold is a floor.
    assert evaluate([Point(90, threshold=100)], unit="ops/s", rule=Rule()).status == "regression"
    assert evaluate([Point(110, threshold=100)], unit="ops/s", rule=Rule()).status == "ok"


@pytest.mark.parametrize("model", ["t_test", "z_score", "percentage"])
def test_too_few_points_is_insufficient_data_never_a_pass(model: str) -> None:
    history = [Point(100), Point(101), Point(99), Point(300)]
    verdict = evaluate(history, unit="ms", rule=Rule(model=model))
    assert verdict.status == "insufficient_data"
    assert "needs" in verdict.reason


def test_t_test_against_a_given_benchmark(rng: random.Random) -> None:
    recent = [Point(p.value, benchmark=100) for p in normal(rng, 112, 2, 5)]
    verdict = evaluate(recent, unit="ms", rule=Rule())
    assert verdict.status == "regression"
    assert verdict.baseline == 100
    on_target = [Point(p.value, benchmark=100) for p in normal(rng, 100, 2, 5)]
    assert evaluate(on_target, unit="ms", rule=Rule()).status == "ok"


def test_z_score_model(rng: random.Random) -> None:
    history = normal(rng, 100, 2, 20)
    rule = Rule(model="z_score", z=3)
    assert evaluate([*history, Point(101)], unit="ms", rule=rule).status == "ok"
    verdict = evaluate([*history, Point(120)], unit="ms", rule=rule)
    assert verdict.status == "regression"
    assert verdict.details["z"] > 3
    assert verdict.p_value is not None
    assert verdict.p_value < 0.01


def test_percentage_model(rng: random.Random) -> None:
    history = [Point(100)] * 10
    rule = Rule(model="percentage", percentage=10)
    assert evaluate([*history, Point(109)], unit="ms", rule=rule).status == "ok"
    verdict = evaluate([*history, Point(111)], unit="ms", rule=rule)
    assert verdict.status == "regression"
    assert verdict.delta_pct == pytest.approx(11)


def test_static_model() -> None:
    rule = Rule(model="static", limit=250)
    assert evaluate([Point(251)], unit="ms", rule=rule).status == "regression"
    assert evaluate([Point(250)], unit="ms", rule=rule).status == "ok"
    assert evaluate([Point(1)], unit="ms", rule=Rule(model="static")).status == "insufficient_data"


def test_constant_series_do_not_divide_by_zero() -> None:
    flat = [Point(5.0)] * 25
    assert evaluate(flat, unit="ms", rule=Rule()).status == "ok"
    jump = [Point(5.0)] * 20 + [Point(6.0)] * 5
    verdict = evaluate(jump, unit="ms", rule=Rule())
    assert (verdict.status, verdict.p_value) == ("regression", 0.0)
    zero = [Point(0.0)] * 20 + [Point(1.0)] * 5
    assert evaluate(zero, unit="ms", rule=Rule()).status == "regression"


def test_rules_match_by_name_pattern_first_match_wins() -> None:
    settings = {
        "rules": [
            {"match": "api.*", "model": "percentage", "percentage": 20},
            {"match": "*", "model": "z_score"},
        ],
        "higher_is_better": ["*.score"],
    }
    assert rule_for(settings, "api.p95") == Rule(match="api.*", model="percentage", percentage=20)
    assert rule_for(settings, "db.query").model == "z_score"
    assert rule_for(settings, "lighthouse.score").direction == "higher"
    assert rule_for(None, "x") == Rule()
    # k6's failed-request rate is in % but, unlike a pass rate, lower is better.
    assert direction_of("%", rule_for(None, "http_req_failed.rate")) == "lower_is_better"
    assert direction_of("%", rule_for(None, "checks.pass_rate")) == "higher_is_better"


def test_series_identity_ignores_run_tags() -> None:
    a = series_key("p95", {"route": "/", "version": "1.0", "commit": "abc"})
    b = series_key("p95", {"commit": "def", "route": "/", "version": "2.0"})
    assert a == b
    assert series_key("p95", {"route": "/x"}) != a
    assert series_key("p99", {"route": "/"}) != a
