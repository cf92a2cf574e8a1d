"""The performance report: per benchmark series, its trend over the period and where it stands
against its baseline; the regressions found in the period."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from shipboard.core.time import utcnow
from shipboard.performance import regression
from shipboard.performance import service as performance
from shipboard.performance.models import PerformanceMetric

MAX_POINTS_PER_SERIES = 500  # what the HTML chart draws; the figures use every point


def performance_report(session: Session, *, environment: str, period: timedelta) -> dict[str, Any]:
    until = utcnow()
    since = until - period
    series: dict[str, list[PerformanceMetric]] = defaultdict(list)
    for row in performance.results_for(session, environment=environment, since=since, until=until):
        series[regression.series_key(row.name, row.tags)].append(row)
    open_keys = {
        regression.series_key(r.name, r.tags)
        for r in performance.list_regressions(session, environment=environment, status="open").items
    }
    benchmarks = [
        _summary(rows, regressed=key in open_keys)
        for key, rows in sorted(series.items(), key=lambda item: item[0])
    ]
    found = [
        r
        for r in performance.list_regressions(session, environment=environment, status=None).items
        if r.detected_at >= since or r.status == "open"
    ]
    return {
        "environment": environment,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "benchmarks": benchmarks,
        "regressions": [r.model_dump(mode="json") for r in found],
        "open_regressions": sum(1 for r in found if r.status == "open"),
    }


def _summary(rows: list[PerformanceMetric], *, regressed: bool) -> dict[str, Any]:
    values = [r.value for r in rows]
    first, last = rows[0], rows[-1]
    # Trend as the change between the medians of the first and last fifth: robust to one outlier.
    fifth = max(1, len(values) // 5)
    start, end = statistics.median(values[:fifth]), statistics.median(values[-fifth:])
    change = (end - start) / abs(start) * 100 if start else None
    direction = regression.direction_of(last.unit, regression.rule_for(None, last.name))
    return {
        "name": last.name,
        "tags": regression.series_tags(last.tags),
        "unit": last.unit,
        "direction": direction,
        "points": len(values),
        "first_at": _iso(first.timestamp),
        "last_at": _iso(last.timestamp),
        "latest": last.value,
        "latest_version": (last.tags or {}).get("version"),
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
        "median": statistics.median(values),
        "change_pct": change,
        "trend": _trend_word(change, direction),
        "benchmark": last.benchmark,
        "threshold": last.threshold,
        "regressed": regressed,
        "series": [{"t": _iso(r.timestamp), "v": r.value} for r in rows[-MAX_POINTS_PER_SERIES:]],
    }


def _trend_word(change: float | None, direction: str) -> str:
    if change is None or abs(change) < 2:
        return "flat"
    better = change < 0 if direction == "lower_is_better" else change > 0
    return "improving" if better else "worsening"


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None
