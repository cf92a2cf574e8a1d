"""Alert evaluation, directly (no database, no HTTP): threshold and anomaly conditions, the alert
state machine edge by edge, and alert fingerprints."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pytest

from shipboard.alerting import evaluation
from shipboard.alerting.evaluation import AlertState, anomaly, fingerprint, step, threshold

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# --- threshold -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("agg", "op", "limit", "active", "measured"),
    [
        ("avg", ">", 2, False, 2.0),
        ("avg", ">=", 2, True, 2.0),
        ("max", ">", 2, True, 3.0),
        ("min", "<", 2, True, 1.0),
        ("sum", "==", 6, True, 6.0),
        ("count", "!=", 3, False, 3.0),
        ("p50", "<=", 2, True, 2.0),
    ],
)
def test_threshold_compares_the_aggregate(
    agg: str, op: str, limit: float, active: bool, measured: float
) -> None:
    condition = threshold([1.0, 2.0, 3.0], agg=agg, op=op, value=limit)
    assert (condition.active, condition.value) == (active, measured)
    assert condition.reason == f"{agg} = {measured:g} {op} {limit:g} is {active}"


def test_no_data_is_unknown_except_for_a_count() -> None:
    silent = threshold([], agg="avg", op=">", value=0)
    assert (silent.active, silent.value, silent.reason) == (None, None, "no data in the window")
    # "fewer than one request a minute" is a question an empty window answers.
    count = threshold([], agg="count", op="<", value=1)
    assert (count.active, count.value) == (True, 0.0)


# --- anomaly -------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["robust_zscore", "ewma"])
def test_anomaly_needs_history_and_a_recent_value(method: str) -> None:
    short = anomaly([1.0] * 9, [50.0], method=method, sensitivity=3, min_points=10)
    assert short.active is None
    assert short.reason == "need 10 history points and a recent one"
    assert anomaly([1.0] * 10, [], method=method, sensitivity=3, min_points=10).active is None


@pytest.mark.parametrize("method", ["robust_zscore", "ewma"])
def test_a_flat_history_makes_any_change_an_anomaly_and_no_change_none(method: str) -> None:
    same = anomaly([5.0] * 20, [5.0], method=method, sensitivity=3, min_points=10)
    assert (same.active, same.value) == (False, 5.0)
    moved = anomaly([5.0] * 20, [5.1], method=method, sensitivity=3, min_points=10)
    assert moved.active is True
    assert "score inf" in moved.reason


def test_the_recent_value_is_the_mean_of_the_recent_points() -> None:
    condition = anomaly(
        [10.0, 12.0] * 10, [100.0, 0.0], method="robust_zscore", sensitivity=3, min_points=10
    )
    assert condition.value == 50.0


def test_robust_zscore_is_not_moved_by_one_outlier_in_the_history() -> None:
    history = [100.0, 101.0, 99.0, 100.0, 102.0, 98.0] * 5
    spoiled = [*history[:-1], 10_000.0]
    for past in (history, spoiled):
        normal = anomaly(past, [100.5], method="robust_zscore", sensitivity=4, min_points=10)
        spike = anomaly(past, [120.0], method="robust_zscore", sensitivity=4, min_points=10)
        assert (normal.active, spike.active) == (False, True), past[-1]


def test_sensitivity_is_the_score_to_exceed() -> None:
    history = [98.0, 102.0] * 10  # median 100, MAD 2, scaled 2.9652
    score = 6 / (2 * 1.4826)
    recent = [106.0]
    assert anomaly(
        history, recent, method="robust_zscore", sensitivity=score - 0.01, min_points=10
    ).active
    assert (
        anomaly(
            history, recent, method="robust_zscore", sensitivity=score + 0.01, min_points=10
        ).active
        is False
    )
    assert math.isclose(score, 2.0235, rel_tol=1e-4)


# --- the state machine ---------------------------------------------------------------------------


def test_inactive_stays_inactive_while_the_condition_is_false() -> None:
    quiet = AlertState("inactive")
    assert step(quiet, False, at(0), for_s=30, keep_firing_for_s=0) == quiet


def test_pending_keeps_the_moment_the_condition_first_held() -> None:
    pending = step(AlertState("inactive"), True, at(0), for_s=30, keep_firing_for_s=0)
    assert pending == AlertState("pending", at(0), None, None, at(0))
    still = step(pending, True, at(29), for_s=30, keep_firing_for_s=0)
    assert still == AlertState("pending", at(0), None, None, at(29))
    fired = step(still, True, at(30), for_s=30, keep_firing_for_s=0)
    assert fired == AlertState("firing", at(0), at(30), None, at(30))


def test_a_pending_alert_that_clears_is_resolved_without_having_fired() -> None:
    pending = step(AlertState("inactive"), True, at(0), for_s=30, keep_firing_for_s=0)
    cleared = step(pending, False, at(10), for_s=30, keep_firing_for_s=60)
    assert cleared == AlertState("resolved", at(0), None, at(10), at(0))


def test_keep_firing_for_counts_from_the_last_true_evaluation() -> None:
    firing = step(AlertState("inactive"), True, at(0), for_s=0, keep_firing_for_s=30)
    firing = step(firing, True, at(20), for_s=0, keep_firing_for_s=30)
    assert step(firing, False, at(49), for_s=0, keep_firing_for_s=30) == firing
    resolved = step(firing, False, at(50), for_s=0, keep_firing_for_s=30)
    assert resolved == AlertState("resolved", at(0), at(0), at(50), at(20))


def test_without_keep_firing_for_the_first_false_resolves() -> None:
    firing = step(AlertState("inactive"), True, at(0), for_s=0, keep_firing_for_s=0)
    assert step(firing, False, at(1), for_s=0, keep_firing_for_s=0).state == "resolved"


def test_a_condition_true_again_while_firing_clears_nothing_and_moves_last_true() -> None:
    firing = step(AlertState("inactive"), True, at(0), for_s=0, keep_firing_for_s=30)
    again = step(firing, True, at(5), for_s=0, keep_firing_for_s=30)
    assert again == AlertState("firing", at(0), at(0), None, at(5))


def test_a_resolved_alert_starts_over_when_the_condition_returns() -> None:
    resolved = AlertState("resolved", at(0), at(0), at(60), at(30))
    assert step(resolved, True, at(90), for_s=30, keep_firing_for_s=0) == AlertState(
        "pending", at(90), None, None, at(90)
    )
    assert step(resolved, False, at(90), for_s=30, keep_firing_for_s=0) == resolved


# --- fingerprints --------------------------------------------------------------------------------


def test_an_alerts_fingerprint_is_its_labels_in_any_order() -> None:
    a = fingerprint({"alertname": "HighErrors", "environment": "production"})
    b = fingerprint({"environment": "production", "alertname": "HighErrors"})
    assert a == b
    assert len(a) == 16
    assert fingerprint({"alertname": "HighErrors", "environment": "staging"}) != a
    assert fingerprint({"alertname": "HighErrors"}) != a


def test_state_machine_honours_for_and_keep_firing_for() -> None:
    state = evaluation.AlertState("inactive")
    timeline = []
    for second, condition in [
        (0, True),
        (10, True),
        (30, True),
        (40, False),
        (50, False),
        (60, False),
    ]:
        state = evaluation.step(
            state, condition, T0 + timedelta(seconds=second), for_s=30, keep_firing_for_s=25
        )
        timeline.append(state.state)
    assert timeline == ["pending", "pending", "firing", "firing", "firing", "resolved"]
    assert state.starts_at == T0 + timedelta(seconds=30)
    assert state.ends_at == T0 + timedelta(seconds=60)
    pending = evaluation.step(
        evaluation.AlertState("inactive"), True, T0, for_s=30, keep_firing_for_s=0
    )
    assert (
        evaluation.step(
            pending, False, T0 + timedelta(seconds=5), for_s=30, keep_firing_for_s=0
        ).state
        == "resolved"
    )
    immediate = evaluation.step(
        evaluation.AlertState("inactive"), True, T0, for_s=0, keep_firing_for_s=0
    )
    assert immediate.state == "firing"


@pytest.mark.parametrize("method", ["robust_zscore", "ewma"])
def test_anomaly_fires_on_a_spike_and_not_on_noise(method: str) -> None:
    rng = random.Random(42)
    history = [100 + rng.gauss(0, 5) for _ in range(200)]
    noise = [100 + rng.gauss(0, 5) for _ in range(5)]
    spike = [160 + rng.gauss(0, 5) for _ in range(5)]
    quiet = evaluation.anomaly(history, noise, method=method, sensitivity=4, min_points=20)
    loud = evaluation.anomaly(history, spike, method=method, sensitivity=4, min_points=20)
    assert quiet.active is False, quiet.reason
    assert loud.active is True, loud.reason
    assert (
        evaluation.anomaly(history[:5], spike, method=method, sensitivity=4, min_points=20).active
        is None
    )


# --- promql rules --------------------------------------------------------------------------------

RULE_LABELS = {"alertname": "Errors", "environment": "production", "severity": "high"}


def test_promql_makes_each_sample_an_alert_with_its_labels_under_the_rules() -> None:
    series = evaluation.promql(
        [
            ({"__name__": "errors", "route": "/pay", "environment": "staging"}, 12.0),
            ({"__name__": "errors", "route": "/cart"}, 1.0),
        ],
        op=">",
        value=5,
        rule_labels=RULE_LABELS,
    )
    assert [(s.labels, s.condition.active, s.condition.value) for s in series] == [
        ({**RULE_LABELS, "route": "/pay"}, True, 12.0),
        ({**RULE_LABELS, "route": "/cart"}, False, 1.0),
    ]
    assert series[0].condition.reason == "12 > 5 is True"


def test_promql_without_a_value_fires_every_sample_and_nan_satisfies_no_condition() -> None:
    (always,) = evaluation.promql([({}, 3.0)], op=">", value=None, rule_labels=RULE_LABELS)
    assert always.condition.active is True
    (nan,) = evaluation.promql([({}, math.nan)], op="<", value=5, rule_labels=RULE_LABELS)
    assert (nan.condition.active, nan.condition.value) == (False, None)
    (inf,) = evaluation.promql([({}, math.inf)], op=">", value=5, rule_labels=RULE_LABELS)
    assert (inf.condition.active, inf.condition.value) == (True, None)


def test_promql_refuses_series_it_cannot_tell_apart_and_answers_too_large() -> None:
    same = [({"__name__": "a"}, 1.0), ({"__name__": "b"}, 2.0)]
    with pytest.raises(ValueError, match="same labels"):
        evaluation.promql(same, op=">", value=0, rule_labels=RULE_LABELS)
    many = [({"i": str(i)}, 1.0) for i in range(evaluation.MAX_SERIES + 1)]
    with pytest.raises(ValueError, match="more than 1000"):
        evaluation.promql(many, op=">", value=0, rule_labels=RULE_LABELS)
