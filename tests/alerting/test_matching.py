"""Silence matchers, directly (Alertmanager's rules; no database, no HTTP)."""

from __future__ import annotations

import pytest

from shipboard.alerting import matching
from shipboard.alerting.matching import matches

LABELS = {"alertname": "HighLatency", "environment": "production", "severity": "high"}


def matcher(name: str, value: str, **flags: bool) -> dict[str, object]:
    return {"name": name, "value": value, **flags}


def test_no_matchers_match_every_alert() -> None:
    assert matches([], LABELS)


def test_every_matcher_must_hold() -> None:
    both = [matcher("alertname", "HighLatency"), matcher("environment", "production")]
    assert matches(both, LABELS)
    one_wrong = [matcher("alertname", "HighLatency"), matcher("environment", "staging")]
    assert not matches(one_wrong, LABELS)


def test_a_missing_label_reads_as_the_empty_string() -> None:
    assert matches([matcher("team", "")], LABELS)
    assert not matches([matcher("team", "web")], LABELS)
    assert matches([matcher("team", "web", isEqual=False)], LABELS)
    assert matches([matcher("team", ".*", isRegex=True)], LABELS)


@pytest.mark.parametrize(
    ("pattern", "hit"),
    [
        ("High.*", True),
        ("High", False),  # anchored: the whole value must match
        ("Latency", False),
        (".*Latency", True),
        ("HighLatency|Other", True),
        ("highlatency", False),  # case-sensitive
    ],
)
def test_regex_matchers_match_the_whole_value(pattern: str, hit: bool) -> None:
    assert matches([matcher("alertname", pattern, isRegex=True)], LABELS) is hit
    assert matches([matcher("alertname", pattern, isRegex=True, isEqual=False)], LABELS) is not hit


def test_equality_is_exact() -> None:
    assert not matches([matcher("alertname", "highlatency")], LABELS)
    assert not matches([matcher("alertname", "HighLatency ")], LABELS)


@pytest.mark.parametrize("negated", [False, True])
def test_a_regex_that_does_not_compile_matches_nothing_negated_or_not(negated: bool) -> None:
    # Only a silence written before validation, or straight into the database, has one: a broken
    # silence must mute no alert.
    broken = matcher("alertname", "(unclosed", isRegex=True, isEqual=not negated)
    assert not matches([broken], LABELS)


def test_is_equal_absent_means_equal() -> None:
    assert matches([{"name": "severity", "value": "high", "isRegex": False}], LABELS)


def test_silence_matchers() -> None:
    labels = {"alertname": "HighLatency", "environment": "production", "severity": "high"}
    assert matching.matches([{"name": "alertname", "value": "HighLatency"}], labels)
    assert matching.matches([{"name": "alertname", "value": "High.*", "isRegex": True}], labels)
    assert not matching.matches(
        [{"name": "environment", "value": "production", "isEqual": False}], labels
    )
    assert not matching.matches([{"name": "alertname", "value": "Other"}], labels)
