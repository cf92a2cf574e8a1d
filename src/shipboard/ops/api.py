from __future__ import annotations

import hmac
from typing import Annotated

import sqlalchemy as sa
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST
from pydantic import BaseModel
from sqlalchemy.exc import SQLAlchemyError

from shipboard.auth.deps import AdminOnly, current_principal
from shipboard.core.errors import Forbidden
from shipboard.core.problems import Problem, problem_response
from shipboard.http.db import RequestDbDep
from shipboard.ops import dbhealth, readiness
from shipboard.ops.schemas import DbHealth

router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/readyz", response_model=Health, responses={503: {"model": Problem}})
def readyz(request: Request) -> Health | JSONResponse:
    """Readiness: the database answers and deployments do not wait for a worker that is gone."""
    stopped = readiness.stopped_threads(request.app.state)
    if stopped:
        return _unready(f"in-process {' and '.join(stopped)} stopped; restart the server")
    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        stalled = readiness.stalled_queue(
            request.app.state.engine, stall_s=request.app.state.settings.ready_queue_stall_s
        )
    except SQLAlchemyError:
        return _unready("database unreachable")
    if stalled:
        return _unready(stalled)
    return Health(status="ok")


def _unready(detail: str) -> JSONResponse:
    return problem_response(503, detail, headers={"Retry-After": "5"})


_scraper = HTTPBearer(
    auto_error=False,
    scheme_name="MetricsToken",
    description="SHIPBOARD_METRICS_TOKEN, or an admin's API token",
)


async def metrics_scraper(
    request: Request,
    db: RequestDbDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_scraper)],
) -> None:
    """Prometheus with the metrics token (no database needed, so a scrape still reports a
    database that is down), or an admin."""
    expected = request.app.state.settings.metrics_token
    if (
        expected
        and credentials is not None
        and hmac.compare_digest(credentials.credentials.encode(), expected.encode())
    ):
        return
    principal = await current_principal(request, db, credentials)
    if principal.role != "admin":
        raise Forbidden(
            f"role {principal.role!r} may not read /metrics; it needs admin or the metrics token"
        )


MetricsScraper = Annotated[None, Depends(metrics_scraper)]


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"},
        401: {"model": Problem},
        403: {"model": Problem},
    },
)
def metrics(request: Request, _: MetricsScraper) -> Response:
    """Shipboard's own metrics in Prometheus' text format."""
    return Response(request.app.state.telemetry.render(), media_type=CONTENT_TYPE_LATEST)


@router.get(
    "/api/v1/ops/db-health",
    response_model=DbHealth,
    tags=["operations"],
    responses={401: {"model": Problem}, 403: {"model": Problem}},
)
def db_health(
    request: Request,
    _: AdminOnly,
    limit: Annotated[int, Query(ge=1, le=100, description="Rows per list")] = 10,
    large_table_rows: Annotated[
        int, Query(ge=0, description="Tables from this many rows count for sequential scans")
    ] = 10_000,
) -> DbHealth:
    """Database health: slow queries, index use, bloat, connections, replication, partitions."""
    # Its own connection, not the request's: that one runs as the restricted application role.
    return dbhealth.collect(
        request.app.state.engine, limit=limit, large_table_rows=large_table_rows
    )
