"""Cumulative OTLP points to per-interval increments, and exponential-histogram quantiles. Pure.

Shipboard stores every Sum, Histogram, ExponentialHistogram and Summary point as what happened
during its own interval (delta temporality), whatever the exporter sent, so a count, a sum or a
quantile means the same for both kinds of exporter. A cumulative point is turned into one by
subtracting the previous point of its series, kept as a *reading* (a JSON-able dict) in the
``otlp_cumulative_state`` table:

- no previous point: the point is the increment since its ``start_time_unix_nano``; without a
  start time it is only remembered (a baseline), since the interval it covers is unknown;
- the same start time and a later time: the difference; a count or a bucket that went down is a
  reset (the point is the increment since the reset);
- another start time: the series restarted, the point is the increment since its new start;
- the same start time and a time not after the stored one: a retry or a late point, not stored.
"""

from __future__ import annotations

import math
from typing import Any

Reading = dict[str, Any]


def _buckets(offset: int, counts: list[int]) -> dict[int, int]:
    return {offset + i: int(c) for i, c in enumerate(counts) if c}


def exponential_reading(point: Any) -> Reading:
    return {
        "count": int(point.count),
        "sum": float(point.sum) if point.HasField("sum") else None,
        "scale": int(point.scale),
        "zero": int(point.zero_count),
        "zero_threshold": float(point.zero_threshold),
        "positive": sorted(
            _buckets(point.positive.offset, list(point.positive.bucket_counts)).items()
        ),
        "negative": sorted(
            _buckets(point.negative.offset, list(point.negative.bucket_counts)).items()
        ),
    }


def _downscale(buckets: list[Any], by: int) -> dict[int, int]:
    out: dict[int, int] = {}
    for index, count in buckets:
        merged = int(index) >> by  # floor: bucket i of scale s lies in i >> 1 of scale s - 1
        out[merged] = out.get(merged, 0) + int(count)
    return out


def _sub_sum(current: float | None, previous: float | None) -> float | None:
    if current is None or previous is None:
        return current
    return current - previous


def _subtract_number(current: Reading, previous: Reading) -> Reading | None:
    delta = current["value"] - previous["value"]
    if current.get("monotonic") and delta < 0:
        return None
    return {**current, "value": delta}


def _subtract_summary(current: Reading, previous: Reading) -> Reading | None:
    count = current["count"] - previous["count"]
    if count < 0:
        return None
    return {**current, "count": count, "sum": _sub_sum(current["sum"], previous["sum"])}


def _subtract_histogram(current: Reading, previous: Reading) -> Reading | None:
    count = current["count"] - previous["count"]
    if count < 0 or current["bounds"] != previous["bounds"]:
        return None
    if len(current["counts"]) != len(previous["counts"]):
        return None
    counts = [c - p for c, p in zip(current["counts"], previous["counts"], strict=True)]
    if any(c < 0 for c in counts):
        return None
    return {
        **current,
        "count": count,
        "sum": _sub_sum(current["sum"], previous["sum"]),
        "counts": counts,
    }


def _subtract_exponential(current: Reading, previous: Reading) -> Reading | None:
    # An SDK lowers the scale as its range grows; compare the two at the coarser scale.
    scale = min(current["scale"], previous["scale"])
    out: Reading = {
        **current,
        "count": current["count"] - previous["count"],
        "sum": _sub_sum(current["sum"], previous["sum"]),
        "scale": scale,
        "zero": current["zero"] - previous["zero"],
    }
    if out["count"] < 0 or out["zero"] < 0:
        return None
    for side in ("positive", "negative"):
        now = _downscale(current[side], current["scale"] - scale)
        before = _downscale(previous[side], previous["scale"] - scale)
        diff = {i: now.get(i, 0) - before.get(i, 0) for i in now.keys() | before.keys()}
        if any(c < 0 for c in diff.values()):
            return None
        out[side] = sorted((i, c) for i, c in diff.items() if c)
    return out


SUBTRACT = {
    "number": _subtract_number,
    "summary": _subtract_summary,
    "histogram": _subtract_histogram,
    "exponential": _subtract_exponential,
}


def subtract(kind: str, current: Reading, previous: Reading) -> Reading | None:
    """``current - previous`` for two readings of one series, or None when the series was reset
    in between (something that only grows went down, or the buckets changed)."""
    return SUBTRACT[kind](current, previous)


def increment(
    kind: str,
    current: Reading,
    start_ns: int,
    time_ns: int,
    previous: tuple[int, int, Reading] | None,
) -> Reading | None:
    """What a cumulative point adds to its series; None when nothing is to be stored."""
    if previous is None:
        return current if start_ns else None
    previous_start, _previous_time, previous_reading = previous
    if not advances(start_ns, time_ns, previous):
        return None
    if start_ns != previous_start:
        return current
    delta = subtract(kind, current, previous_reading)
    return current if delta is None else delta


def advances(start_ns: int, time_ns: int, previous: tuple[int, int, Reading] | None) -> bool:
    """Whether a point is newer than the stored one of its series (and so replaces it)."""
    if previous is None:
        return True
    previous_start, previous_time, _ = previous
    return start_ns > previous_start or (start_ns == previous_start and time_ns > previous_time)


def _power(exponent: float) -> float:
    try:
        return float(2.0**exponent)
    except OverflowError:
        return math.inf


def exponential_quantile(q: float, reading: Reading) -> float | None:
    """The q-quantile of an exponential histogram, interpolated linearly inside its bucket.

    Bucket i at scale s holds (base^i, base^(i+1)] with base = 2^(2^-s); negative buckets mirror
    them; the zero bucket is [-zero_threshold, zero_threshold]."""
    scale = reading["scale"]
    ranges: list[tuple[float, float, int]] = []
    for index, count in sorted(reading["negative"], reverse=True):
        ranges.append(
            (-_power(math.ldexp(index + 1, -scale)), -_power(math.ldexp(index, -scale)), count)
        )
    if reading["zero"]:
        threshold = reading["zero_threshold"]
        ranges.append((-threshold, threshold, reading["zero"]))
    for index, count in sorted(reading["positive"]):
        ranges.append(
            (_power(math.ldexp(index, -scale)), _power(math.ldexp(index + 1, -scale)), count)
        )
    total = sum(count for _, _, count in ranges)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for lower, upper, count in ranges:
        if seen + count >= rank and count > 0:
            estimate = lower + (upper - lower) * (rank - seen) / count
            return estimate if math.isfinite(estimate) else None
        seen += count
    return None
