from __future__ import annotations

from datetime import timedelta
from functools import partial
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter, Depends, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from shipboard.auth.deps import AnyUser, require_role_unlocked
from shipboard.core.errors import InvalidInput
from shipboard.core.problems import Problem
from shipboard.core.time import parse_duration, utcnow
from shipboard.core.types import ROLES, EnvironmentName, Timestamp
from shipboard.environments.config_sections import ReportKind
from shipboard.environments.service import require_environment
from shipboard.http.db import DbSession
from shipboard.monitoring import service as metrics
from shipboard.monitoring.api import SourceParam
from shipboard.reports import documents, monitoring, performance, security, service
from shipboard.reports.monitoring import MonitoringReport
from shipboard.reports.schemas import DoraReport, PerformanceReport, SecurityReport


async def _store_metrics(
    request: Request,
    _caller: Annotated[Any, Depends(require_role_unlocked(*ROLES))],
    environment: EnvironmentName,
    period: Annotated[str, Query(description="Like 7d, 24h, 2w")] = "7d",
    source: SourceParam = None,
) -> monitoring.StoreMetrics | None:
    """The metrics store's part of the monitoring report, when it reads the store.

    A dependency declared before ``DbSession``, so it runs before the request's transaction
    opens: an HTTP call of up to the store's timeout holds no PostgreSQL connection idle in a
    transaction (as the scheduled report and the promotion checks ask it)."""
    store = metrics.pick_store(request.app.state.metrics_store, source)
    if store is None:
        return None
    read = partial(monitoring.read_store, store, environment=environment, period=_period(period))
    return await anyio.to_thread.run_sync(read)


router = APIRouter(
    prefix="/api/v1/reports",
    tags=["reports"],
    responses={401: {"model": Problem}, 403: {"model": Problem}},
)


@router.get(
    "/monitoring",
    response_model=MonitoringReport,
    responses={
        200: {"content": {"text/csv": {}, "text/html": {}}},
        404: {"model": Problem},
        422: {"model": Problem},
        503: {"model": Problem},
    },
)
def monitoring_report(
    store_read: Annotated[monitoring.StoreMetrics | None, Depends(_store_metrics)],
    db: DbSession,
    _: AnyUser,
    environment: EnvironmentName,
    period: Annotated[str, Query(description="Like 7d, 24h, 2w")] = "7d",
    format: Literal["json", "csv", "html"] = "json",
) -> Any:
    """Per metric: min/max/avg/p95, least-squares trend per day with its p-value, anomalies;
    alerts fired and their time to resolve. Answers 503 when it reads the metrics store and
    the store cannot answer."""
    span = _period(period)
    require_environment(db, environment)
    report = monitoring.monitoring_report(db, environment=environment, period=span, read=store_read)
    if format == "json":
        return report
    return _render("monitoring", report, format)


@router.get(
    "/security",
    response_model=SecurityReport,
    responses={
        200: {
            "content": {
                "application/json": {},
                "text/csv": {},
                "text/html": {},
                "application/sarif+json": {},
            }
        },
        404: {"model": Problem},
        422: {"model": Problem},
    },
)
def security_report(
    db: DbSession,
    _: AnyUser,
    environment: EnvironmentName,
    format: Literal["json", "csv", "html", "sarif"] = "json",
) -> Any:
    """Open findings by severity and type, overdue, mean time to resolve, top CWEs, score over
    time; `format=sarif` gives the open findings as one SARIF 2.1.0 file."""
    require_environment(db, environment)
    report = security.security_report(db, environment=environment)
    if format in ("csv", "html"):
        return _render("security", report, format)
    if format == "sarif":
        return JSONResponse(security.to_sarif(report), media_type="application/sarif+json")
    return JSONResponse(jsonable_encoder(report))


FORMATS: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, "text/csv": {}, "text/html": {}}},
    404: {"model": Problem},
    422: {"model": Problem},
}
MAX_DORA_SPAN = timedelta(days=3 * 366)


def _render(kind: ReportKind, report: Any, format: str) -> Any:
    # JSON goes out as computed (timestamps as the report wrote them); ``response_model`` is
    # what OpenAPI says of it, and the API tests validate real answers against it.
    if format == "csv":
        return PlainTextResponse(documents.to_csv(kind, report), media_type="text/csv")
    if format == "html":
        return HTMLResponse(documents.to_html(kind, report))
    return JSONResponse(jsonable_encoder(report))


def _period(period: str) -> timedelta:
    try:
        return parse_duration(period)
    except ValueError as exc:
        raise InvalidInput(
            str(exc), errors=[{"loc": ["query", "period"], "msg": str(exc)}]
        ) from exc


@router.get("/dora", response_model=DoraReport, responses=FORMATS)
def dora_report(
    db: DbSession,
    _: AnyUser,
    environment: EnvironmentName = "production",
    since: Annotated[Timestamp | None, Query(description="Default: 90 days before until")] = None,
    until: Annotated[Timestamp | None, Query(description="Default: now")] = None,
    format: Literal["json", "csv", "html"] = "json",
) -> Any:
    """The four DORA metrics with their buckets, the counts behind each, and a weekly series."""
    until = until or utcnow()
    since = since or until - timedelta(days=90)
    if since >= until:
        raise InvalidInput(
            "since must be before until", errors=[{"loc": ["query", "since"], "msg": "after until"}]
        )
    if until - since > MAX_DORA_SPAN:
        raise InvalidInput(
            "the period may span at most three years",
            errors=[{"loc": ["query", "since"], "msg": "period too long"}],
        )
    require_environment(db, environment)
    report = service.dora_report(db, environment=environment, since=since, until=until)
    return _render("dora", report, format)


@router.get("/performance", response_model=PerformanceReport, responses=FORMATS)
def performance_report(
    db: DbSession,
    _: AnyUser,
    environment: EnvironmentName,
    period: Annotated[str, Query(description="Like 7d, 30d, 12w")] = "30d",
    format: Literal["json", "csv", "html"] = "json",
) -> Any:
    """Per benchmark series: latest, median, change over the period, trend; the regressions."""
    span = _period(period)
    require_environment(db, environment)
    report = performance.performance_report(db, environment=environment, period=span)
    return _render("performance", report, format)
