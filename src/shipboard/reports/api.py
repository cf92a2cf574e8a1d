from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from shipboard.auth.deps import AnyUser, DbSession
from shipboard.core.errors import InvalidInput
from shipboard.core.problems import Problem
from shipboard.core.time import parse_duration
from shipboard.core.types import EnvironmentName
from shipboard.environments.service import require_environment
from shipboard.reports import monitoring, security
from shipboard.reports.monitoring import MonitoringReport

router = APIRouter(
    prefix="/api/v1/reports",
    tags=["reports"],
    responses={401: {"model": Problem}, 403: {"model": Problem}},
)


@router.get(
    "/monitoring",
    response_model=MonitoringReport,
    responses={
        200: {"content": {"text/csv": {}}},
        404: {"model": Problem},
        422: {"model": Problem},
    },
)
def monitoring_report(
    db: DbSession,
    _: AnyUser,
    environment: EnvironmentName,
    period: Annotated[str, Query(description="Like 7d, 24h, 2w")] = "7d",
    format: Literal["json", "csv"] = "json",
) -> MonitoringReport | PlainTextResponse:
    """Per metric: min/max/avg/p95, least-squares trend per day with its p-value, anomalies;
    alerts fired and their time to resolve."""
    try:
        span = parse_duration(period)
    except ValueError as exc:
        raise InvalidInput(
            str(exc), errors=[{"loc": ["query", "period"], "msg": str(exc)}]
        ) from exc
    require_environment(db, environment)
    report = monitoring.monitoring_report(db, environment=environment, period=span)
    if format == "csv":
        return PlainTextResponse(monitoring.to_csv(report), media_type="text/csv")
    return report


@router.get(
    "/security",
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
    if format == "csv":
        return PlainTextResponse(security.to_csv(report), media_type="text/csv")
    if format == "html":
        return HTMLResponse(security.to_html(report))
    if format == "sarif":
        return JSONResponse(security.to_sarif(report), media_type="application/sarif+json")
    return JSONResponse(jsonable_encoder(report))
