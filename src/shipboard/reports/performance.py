"""The performance report: per benchmark series, its trend over the period and where it stands
against its baseline; the regressions found in the period."""

from __future__ import annotations

import io
import statistics
from collections import defaultdict
from datetime import datetime, timedelta
from html import escape
from typing import Any

from sqlalchemy.orm import Session

from shipboard.core.csvsafe import dict_writer
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


CSV_FIELDS = (
    "name",
    "tags",
    "unit",
    "direction",
    "points",
    "latest",
    "latest_version",
    "min",
    "max",
    "mean",
    "median",
    "change_pct",
    "trend",
    "regressed",
)


def to_csv(report: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = dict_writer(out, fieldnames=CSV_FIELDS, extrasaction="ignore")
    writer.writeheader()
    for row in report["benchmarks"]:
        writer.writerow(
            {**row, "tags": ";".join(f"{k}={v}" for k, v in sorted(row["tags"].items()))}
        )
    return out.getvalue()


def _spark(points: list[dict[str, Any]], width: int = 160, height: int = 32) -> str:
    values = [p["v"] for p in points]
    if len(values) < 2:
        return ""
    low, high = min(values), max(values)
    span = (high - low) or 1.0
    step = width / (len(values) - 1)
    path = " ".join(
        f"{i * step:.1f},{height - (v - low) / span * (height - 4) - 2:.1f}"
        for i, v in enumerate(values)
    )
    return (
        f"<svg width='{width}' height='{height}' viewBox='0 0 {width} {height}' role='img' "
        f"aria-label='trend'><polyline fill='none' stroke='#2563eb' stroke-width='1.5' "
        f"points='{path}'/></svg>"
    )


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.4g}"


def to_html(report: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr class='{'bad' if b['regressed'] else ''}'><td>{escape(b['name'])}</td>"
        f"<td>{escape(', '.join(f'{k}={v}' for k, v in sorted(b['tags'].items())))}</td>"
        f"<td>{_num(b['latest'])} {escape(b['unit'])}</td><td>{_num(b['median'])}</td>"
        f"<td>{_num(b['change_pct'])} %</td><td>{escape(b['trend'])}</td>"
        f"<td>{_spark(b['series'])}</td><td>{'REGRESSED' if b['regressed'] else ''}</td></tr>"
        for b in report["benchmarks"]
    )
    regressions = "".join(
        f"<tr><td>{escape(r['name'])}</td><td>{escape(r['version'] or '')}</td>"
        f"<td>{_num(r['value'])}</td><td>{_num(r['baseline'])}</td>"
        f"<td>{_num(r['delta_pct'])} %</td><td>{_num(r['p_value'])}</td>"
        f"<td>{escape(r['model'])}</td><td>{escape(r['status'])}</td></tr>"
        for r in report["regressions"]
    )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>Performance report — {escape(report['environment'])}</title>"
        "<style>body{font-family:system-ui,sans-serif;margin:2em;color:#111}"
        "table{border-collapse:collapse;width:100%;margin:1em 0}"
        "td,th{border-bottom:1px solid #ddd;padding:.3em .5em;text-align:left;font-size:.9em}"
        "tr.bad td{background:#fee2e2}@media print{body{margin:0}}</style></head><body>"
        f"<h1>Performance report — {escape(report['environment'])}</h1>"
        f"<p>{escape(report['since'])} to {escape(report['until'])}: "
        f"{len(report['benchmarks'])} benchmark series, "
        f"{report['open_regressions']} open regression(s).</p>"
        "<h2>Benchmarks</h2><table><tr><th>benchmark</th><th>tags</th><th>latest</th>"
        "<th>median</th><th>change</th><th>trend</th><th>history</th><th></th></tr>"
        f"{rows}</table>"
        "<h2>Regressions</h2><table><tr><th>benchmark</th><th>version</th><th>value</th>"
        "<th>baseline</th><th>delta</th><th>p-value</th><th>model</th><th>status</th></tr>"
        f"{regressions}</table></body></html>"
    )
