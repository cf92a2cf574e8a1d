"""k6 end-of-test summaries: the legacy ``--summary-export`` file and ``handleSummary`` data."""

from __future__ import annotations

from typing import Final

from shipboard.performance.importers.common import Collector, ImportFailed, as_number, quote

_K6 = "k6 summary"

# (k6 metric, statistic as k6 names it, row suffix, unit). k6 reports times in milliseconds.
_K6_STATS: Final = (
    ("http_req_duration", "avg", "avg", "ms"),
    ("http_req_duration", "p(90)", "p90", "ms"),
    ("http_req_duration", "p(95)", "p95", "ms"),
    ("http_req_duration", "med", "med", "ms"),
    ("http_reqs", "rate", "rate", "req/s"),
    ("http_reqs", "count", "count", "count"),
    ("iterations", "count", "count", "count"),
    ("iterations", "rate", "rate", "iterations/s"),
)


def parse(document: dict[str, object], out: Collector) -> None:
    metrics = document.get("metrics")
    if metrics is None:
        raise ImportFailed(f"{_K6}: no metrics object")
    if not isinstance(metrics, dict):
        raise ImportFailed(f"{_K6}: metrics is not an object")
    for metric_name, metric in metrics.items():
        if not isinstance(metric, dict):
            raise ImportFailed(f"{_K6}: metrics.{quote(metric_name)} is not an object")
    no_tags: dict[str, str] = {}

    for metric_name, stat, suffix, unit in _K6_STATS:
        values = _k6_values(metrics, metric_name)
        if values is None:
            continue
        number = _k6_number(values, metric_name, stat)
        if number is not None:
            name = f"{metric_name}.{suffix}"
            out.add(_K6, name, number, unit, no_tags)

    # checks counts passed checks; http_req_failed is a Rate of "request failed", so there
    # "passes" counts FAILED requests and the fraction is the failure rate.
    for metric_name, row_name, prefer_counts in (
        ("checks", "checks.pass_rate", True),
        ("http_req_failed", "http_req_failed.rate", False),
    ):
        values = _k6_values(metrics, metric_name)
        if values is None:
            continue
        fraction = _k6_fraction(values, metric_name, prefer_counts=prefer_counts)
        if fraction is not None:
            out.add(_K6, row_name, 100.0 * fraction, "%", no_tags)

    for metric_name, metric in metrics.items():
        _k6_thresholds(metric_name, metric, out)


def _k6_values(metrics: dict[str, object], metric_name: str) -> dict[str, object] | None:
    metric = metrics.get(metric_name)
    if not isinstance(metric, dict):
        return None
    if "values" not in metric:
        return metric
    values = metric["values"]
    if not isinstance(values, dict):
        raise ImportFailed(f"{_K6}: metrics.{metric_name}.values is not an object")
    return values


def _k6_number(values: dict[str, object], metric_name: str, stat: str) -> float | None:
    raw = values.get(stat)
    if raw is None:
        return None
    number = as_number(raw)
    if number is None:
        raise ImportFailed(f"{_K6}: {metric_name} {stat} is not a number")
    return number


def _k6_fraction(
    values: dict[str, object], metric_name: str, *, prefer_counts: bool
) -> float | None:
    """A Rate metric's fraction of true samples, from its counts or as k6 computed it."""
    passes = _k6_number(values, metric_name, "passes")
    fails = _k6_number(values, metric_name, "fails")
    from_counts = (
        passes / (passes + fails)
        if passes is not None and fails is not None and passes + fails > 0
        else None
    )
    # Legacy files call the fraction "value"; handleSummary calls it "rate".
    stated = _k6_number(values, metric_name, "value")
    if stated is None:
        stated = _k6_number(values, metric_name, "rate")
    if prefer_counts:
        return from_counts if from_counts is not None else stated
    return stated if stated is not None else from_counts


def _k6_thresholds(metric_name: str, metric: dict[str, object], out: Collector) -> None:
    thresholds = metric.get("thresholds")
    if thresholds is None:
        return
    if not isinstance(thresholds, dict):
        raise ImportFailed(f"{_K6}: metrics.{quote(metric_name)}.thresholds is not an object")
    for expression, outcome in thresholds.items():
        if isinstance(outcome, bool):
            # Legacy --summary-export records whether the threshold was CROSSED: true = failed
            # (k6 issue #1498).
            passed = not outcome
        elif isinstance(outcome, dict) and isinstance(outcome.get("ok"), bool):
            passed = outcome["ok"]
        else:
            raise ImportFailed(
                f"{_K6}: threshold {quote(expression)} of {quote(metric_name)} "
                'is neither true/false nor {"ok": true/false}'
            )
        name = f"k6.threshold.{metric_name}.{expression}"
        out.add(_K6, name, 1.0 if passed else 0.0, "pass", {})
