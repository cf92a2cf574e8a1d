"""Read-only report pages: performance trends and regressions, DORA, and the audit log."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from markupsafe import Markup

from shipboard.audit import service as audit
from shipboard.audit.schemas import AuditFilter
from shipboard.core import charts
from shipboard.core.time import utcnow
from shipboard.core.types import ENVIRONMENTS
from shipboard.http.db import DbSession, RequestDbDep
from shipboard.performance import service as performance
from shipboard.reports import documents
from shipboard.reports import performance as performance_report
from shipboard.reports import service as reports
from shipboard.web.deps import AdminPage, Viewer
from shipboard.web.helpers import deploy_markers, environment_choice, moment
from shipboard.web.render import render

router = APIRouter(include_in_schema=False)

PERIODS = {"7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
AUDIT_PAGE = 50

# --- performance -----------------------------------------------------------------------------


def _parse(moment_text: str | None) -> datetime | None:
    return datetime.fromisoformat(moment_text) if moment_text else None


def benchmark_chart(
    bench: dict[str, Any], *, since: datetime, until: datetime, markers: list[charts.Marker]
) -> Markup:
    """One benchmark series with its baseline (median), expected value and threshold."""
    points = [(t, float(p["v"])) for p in bench["series"] if (t := _parse(p["t"])) is not None]
    if points:
        # From the first result, not the start of the period: a young benchmark would
        # otherwise be squeezed against the right edge.
        first = min(t for t, _ in points)
        since = max(since, first - max((until - first) * 0.05, timedelta(hours=1)))
    levels = [charts.Level(bench["median"], f"baseline (median) {bench['median']:.4g}", "baseline")]
    if bench["benchmark"] is not None:
        levels.append(
            charts.Level(bench["benchmark"], f"expected {bench['benchmark']:.4g}", "target")
        )
    bands = []
    if bench["threshold"] is not None:
        # The bad side of the threshold is shaded: above it when lower is better, else below.
        threshold = float(bench["threshold"])
        label = f"past threshold {threshold:.4g}"
        bands.append(
            charts.Band(threshold, None, label)
            if bench["direction"] == "lower_is_better"
            else charts.Band(None, threshold, label)
        )
    tags = ", ".join(f"{k}={v}" for k, v in sorted(bench["tags"].items()))
    return charts.time_chart(
        [charts.Series(bench["name"], points)],
        since=since,
        until=until,
        title=f"{bench['name']}{f' ({tags})' if tags else ''}: {bench['points']} results",
        unit=bench["unit"],
        levels=levels,
        bands=bands,
        markers=markers,
    )


@router.get("/performance")
def performance_page(
    request: Request,
    db: DbSession,
    principal: Viewer,
    environment: str | None = None,
    name: Annotated[str | None, Query(max_length=255)] = None,
    period: Literal["7d", "30d", "90d"] = "30d",
) -> Response:
    env = environment_choice(environment) or "production"
    report = performance_report.performance_report(db, environment=env, period=PERIODS[period])
    benchmarks = report["benchmarks"]
    chosen = name or next(
        (b["name"] for b in benchmarks if b["regressed"]),
        benchmarks[0]["name"] if benchmarks else None,
    )
    since, until = datetime.fromisoformat(report["since"]), datetime.fromisoformat(report["until"])
    markers = deploy_markers(db, environment=env, since=since, until=until) if chosen else []
    shown = [
        (bench, benchmark_chart(bench, since=since, until=until, markers=markers))
        for bench in benchmarks
        if bench["name"] == chosen
    ]
    regressions = (performance.list_regressions(db, environment=env, status=None)).items
    return render(
        request,
        "performance.html",
        principal=principal,
        environments=ENVIRONMENTS,
        environment=env,
        period=period,
        periods=list(PERIODS),
        benchmarks=benchmarks,
        chosen=chosen,
        charts=shown,
        regressions=sorted(
            regressions, key=lambda r: (r.status != "open", -r.detected_at.timestamp())
        )[:50],
        open_regressions=sum(1 for r in regressions if r.status == "open"),
    )


# --- DORA ------------------------------------------------------------------------------------


def week_start(day: date) -> datetime:
    monday = day - timedelta(days=day.weekday())
    return datetime(monday.year, monday.month, monday.day, tzinfo=UTC)


@router.get("/dora")
def dora_page(
    request: Request,
    db: DbSession,
    principal: Viewer,
    environment: str | None = None,
    weeks: Annotated[int, Query(ge=1, le=104)] = 12,
) -> Response:
    env = environment_choice(environment) or "production"
    until = utcnow()
    # Whole calendar weeks (Monday, UTC), as the report counts them; the current one so far.
    since = week_start(until.date()) - timedelta(weeks=weeks - 1)
    report = reports.dora_report(db, environment=env, since=since, until=until)
    chart = documents.dora_chart(
        report,
        title=f"Deployments and failures per week in {env}, last {weeks} weeks",
        empty_text="No completed deployments in this period",
    )
    return render(
        request,
        "dora.html",
        principal=principal,
        environments=ENVIRONMENTS,
        environment=env,
        weeks=weeks,
        week_choices=(4, 12, 26, 52),
        report=report,
        chart=chart,
        since=since,
        until=until,
    )


# --- audit -----------------------------------------------------------------------------------


@router.get("/audit")
async def audit_page(
    request: Request,
    db: RequestDbDep,
    principal: AdminPage,
    actor: Annotated[str | None, Query(max_length=200)] = None,
    action: Annotated[str | None, Query(max_length=200)] = None,
    target_type: Annotated[str | None, Query(max_length=200)] = None,
    target_id: Annotated[str | None, Query(max_length=500)] = None,
    since: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Annotated[str | None, Query(max_length=1000)] = None,
) -> Response:
    filters = AuditFilter(
        actor=actor or None,
        action=action or None,
        target_type=target_type or None,
        target_id=target_id or None,
        since=moment(since, "since"),
    )
    page = await db.run(audit.list_events, filters=filters, cursor=cursor or None, limit=AUDIT_PAGE)
    query = {
        "actor": actor or "",
        "action": action or "",
        "target_type": target_type or "",
        "target_id": target_id or "",
        "since": since or "",
    }
    return render(
        request,
        "audit.html",
        principal=principal,
        events=[
            (e, json.dumps(e.details, sort_keys=True, default=str) if e.details else "")
            for e in page.items
        ],
        filters=query,
        next_query={**{k: v for k, v in query.items() if v}, "cursor": page.next_cursor}
        if page.next_cursor
        else None,
        first_query={k: v for k, v in query.items() if v} if cursor else None,
    )
