"""Bucketing of metric points into a series. Pure."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from shipboard.core.errors import InvalidInput

MAX_POINTS = 1000


def percentile(q: float) -> Callable[[Sequence[float]], float]:
    """Linear interpolation between closest ranks (numpy's default, 'linear')."""

    def compute(values: Sequence[float]) -> float:
        ordered = sorted(values)
        position = (len(ordered) - 1) * q
        low, high = math.floor(position), math.ceil(position)
        fraction = position - low
        if fraction == 0:
            return ordered[low]
        # Weighted, not low + (high - low) * f: the difference of two large values overflows.
        return ordered[low] * (1 - fraction) + ordered[high] * fraction

    return compute


def mean(values: Sequence[float]) -> float:
    """The mean of finite values, which is finite even where their sum is not."""
    try:
        return statistics.fmean(values)
    except OverflowError:
        count = len(values)
        return math.fsum(v / count for v in values)


def total(values: Sequence[float]) -> float:
    """The exact sum; one that no 64-bit float can hold is the caller's mistake, not ours."""
    try:
        result = math.fsum(values)
    except OverflowError:
        result = math.inf
    if not math.isfinite(result):
        raise InvalidInput(
            "the sum of this bucket is too large for a 64-bit number; use avg or max"
        )
    return result


AGGREGATIONS: dict[str, Callable[[Sequence[float]], float]] = {
    "avg": mean,
    "min": min,
    "max": max,
    "sum": total,
    "count": lambda values: float(len(values)),
    "p50": percentile(0.50),
    "p95": percentile(0.95),
    "p99": percentile(0.99),
}


def default_step(since: datetime, until: datetime) -> int:
    """The smallest whole number of seconds that keeps the series at or under MAX_POINTS."""
    return max(1, math.ceil((until - since).total_seconds() / MAX_POINTS))


def bucket(
    points: Sequence[tuple[datetime, float]],
    *,
    since: datetime,
    until: datetime,
    step_s: int,
    agg: str,
) -> list[tuple[datetime, float]]:
    """Group points into [since + k·step, since + (k+1)·step) and aggregate each group.

    Empty buckets are left out rather than reported as zero."""
    reduce = AGGREGATIONS[agg]
    groups: dict[int, list[float]] = {}
    for timestamp, value in points:
        if since <= timestamp < until:
            index = int((timestamp - since).total_seconds() // step_s)
            groups.setdefault(index, []).append(value)
    return [
        (since + timedelta(seconds=index * step_s), reduce(values))
        for index, values in sorted(groups.items())
    ]
