"""Monitoring: a metric over a range with deployments marked (from the database, or from the
metrics store at SHIPBOARD_PROMETHEUS_URL), Shipboard's alerts and Alertmanager's beside them,
and silences."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import Response

from shipboard.alerting import alerts as alert_service
from shipboard.alerting import external
from shipboard.alerting import silences as silence_service
from shipboard.alerting.schemas import SilenceCreate
from shipboard.auth.deps import audit_context_of
from shipboard.core import charts
from shipboard.core.errors import InvalidInput, MetricsStoreUnavailable
from shipboard.core.time import parse_duration, utcnow
from shipboard.core.types import ENVIRONMENTS
from shipboard.http.db import DbSession, RequestDbDep
from shipboard.monitoring import reading
from shipboard.monitoring import service as metrics
from shipboard.monitoring.schemas import Series, SeriesSource
from shipboard.web.deps import DeployerForm, Viewer
from shipboard.web.helpers import (
    back,
    can_write,
    deploy_markers,
    environment_choice,
    validated,
)
from shipboard.web.render import render

router = APIRouter(include_in_schema=False)

Range = Literal["1h", "24h", "7d", "30d"]
RANGES: dict[str, timedelta] = {
    "1h": timedelta(hours=1),
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}
BUCKETS = 240  # points per chart: enough for a smooth line, few enough to stay light
# Prometheus naming conventions: the unit is the last word of the name.
UNIT_SUFFIXES = (
    ("_seconds", "s"),
    ("_milliseconds", "ms"),
    ("_ms", "ms"),
    ("_bytes", "bytes"),
    ("_percent", "%"),
    ("_pct", "%"),
    ("_ratio", "ratio"),
    ("_total", "count"),
    ("_count", "count"),
    ("_rps", "req/s"),
)
MAX_SILENCE = timedelta(days=90)
METRIC = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:.]*")
MATCHER = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")
DONE = {
    "silence-created": "Silence created: matching alerts stay quiet until it ends.",
    "silence-expired": "Silence expired: matching alerts notify again.",
}


def unit_of(metric: str) -> str:
    for suffix, unit in UNIT_SUFFIXES:
        if metric.endswith(suffix):
            return unit
    return ""


def silence_length(text: str) -> timedelta:
    """The silence form's duration (core's one parser), between a minute and 90 days."""
    try:
        length = parse_duration(text)
    except ValueError as exc:
        if not str(exc).startswith("duration"):  # a shape error, not zero or too long
            raise InvalidInput(
                "duration must look like 30m, 2h or 1d",
                errors=[{"loc": ["form", "duration"], "msg": "not a duration"}],
            ) from None
        length = timedelta(0)
    if not timedelta(minutes=1) <= length <= MAX_SILENCE:
        raise InvalidInput(
            "duration must be between 1 minute and 90 days",
            errors=[{"loc": ["form", "duration"], "msg": "out of range"}],
        )
    return length


def parse_matchers(text: str) -> list[dict[str, str]]:
    """``name=value`` pairs, one per line or separated by commas."""
    out = []
    for part in re.split(r"[\n,]", text):
        if not part.strip():
            continue
        match = MATCHER.match(part)
        if not match or not match.group(2):
            raise InvalidInput(
                f"matcher {part.strip()[:80]!r} is not name=value",
                errors=[{"loc": ["form", "matchers"], "msg": "not name=value"}],
            )
        out.append({"name": match.group(1), "value": match.group(2)})
    if not out:
        raise InvalidInput(
            "a silence needs at least one matcher",
            errors=[{"loc": ["form", "matchers"], "msg": "empty"}],
        )
    return out


@router.get("/monitoring")
async def monitoring_page(
    request: Request,
    db: RequestDbDep,
    principal: Viewer,
    environment: str | None = None,
    metric: Annotated[str | None, Query(max_length=255)] = None,
    range_: Annotated[Range, Query(alias="range")] = "24h",
    source: SeriesSource | None = None,
    silence: Annotated[str | None, Query(max_length=500)] = None,
    done: str | None = None,
) -> Response:
    env = environment_choice(environment) or "production"
    if metric and not METRIC.fullmatch(metric):
        raise InvalidInput(
            "metric is not a metric name", errors=[{"loc": ["query", "metric"], "msg": "bad name"}]
        )
    store = metrics.pick_store(request.app.state.metrics_store, source)
    until = utcnow()
    since = until - RANGES[range_]
    chart = None
    points = 0
    names: list[tuple[str, int | None]] = []
    chosen = metric
    store_problem = None

    try:
        names = await reading.read(
            db, store, metrics.names_to_chart, environment=env, since=since, until=until
        )
        chosen = metric or (names[0][0] if names else None)
        if chosen:
            series: Series = await reading.read(
                db,
                store,
                metrics.series,
                name=chosen,
                environment=env,
                since=since,
                until=until,
                step_s=max(1, int(RANGES[range_].total_seconds() // BUCKETS)),
                agg="avg",
                tags={},
            )
            points = len(series.points)
            where = "the metrics store" if store is not None else "Shipboard's database"
            chart = charts.time_chart(
                [charts.Series(chosen, series.points)],
                since=since,
                until=until,
                title=f"{chosen} in {env}, last {range_} (average per {series.step_s} s, "
                f"from {where})",
                unit=unit_of(chosen),
                markers=await db.run(deploy_markers, environment=env, since=since, until=until),
                empty_text=f"No {chosen} points in the last {range_}",
            )
    except MetricsStoreUnavailable as exc:
        # The alerts below matter most when something is down: the page still shows them.
        store_problem = exc.detail
    alerts = [
        a
        for a in (await db.run(alert_service.list_alerts, limit=200)).items
        if a.labels.get("environment") in (env, None)
    ]
    received = (await db.run(external.list_external, environment=env, status=None)).items
    return render(
        request,
        "monitoring.html",
        status_code=503 if store_problem else 200,
        principal=principal,
        notice=DONE.get(done or ""),
        environments=ENVIRONMENTS,
        environment=env,
        names=names,
        metric=chosen,
        range=range_,
        ranges=list(RANGES),
        chart=chart,
        points=points,
        unit=unit_of(chosen or ""),
        source="store" if store is not None else "embedded",
        can_switch=request.app.state.metrics_store is not None,
        store_problem=store_problem,
        firing=[a for a in alerts if a.state == "firing"],
        recent=[a for a in alerts if a.state != "firing"][:20],
        external_firing=[a for a in received if a.status == "firing"],
        external_recent=[a for a in received if a.status != "firing"][:20],
        silences=(await db.run(silence_service.list_silences))[:50],
        can_write=can_write(principal),
        prefill=silence or f"environment={env}",
    )


@router.get("/alerts/{alert_id}")
async def alert_page(
    request: Request, alert_id: uuid.UUID, db: RequestDbDep, principal: Viewer
) -> Response:
    # The page an alert's generatorURL (and every notification about it) links to.
    alert = await db.run(alert_service.get_alert, alert_id=alert_id)
    environment = alert.labels.get("environment", "")
    return render(
        request,
        "alert.html",
        principal=principal,
        a=alert,
        environment=environment if environment in ENVIRONMENTS else None,
        silence_prefill=f"alertname={alert.rule}",
        can_write=can_write(principal),
    )


@router.post("/monitoring/silences")
def create_silence(
    request: Request,
    db: DbSession,
    principal: DeployerForm,
    matchers: Annotated[str, Form(max_length=2000)],
    duration: Annotated[str, Form(max_length=20)],
    comment: Annotated[str, Form(max_length=1024)],
    environment: Annotated[str, Form(max_length=40)] = "",
    metric: Annotated[str, Form(max_length=255)] = "",
    range_: Annotated[str, Form(alias="range", max_length=8)] = "",
) -> Response:
    now = utcnow()
    data = validated(
        SilenceCreate,
        {
            "matchers": parse_matchers(matchers),
            "starts_at": now,
            "ends_at": now + silence_length(duration),
            "comment": comment.strip(),
        },
    )
    silence_service.create_silence(
        db, data=data, creator=principal.name, audit_context=audit_context_of(request, principal)
    )
    return _back(environment, metric, range_, "silence-created")


@router.post("/monitoring/silences/{silence_id}/expire")
def expire_silence(
    request: Request,
    silence_id: uuid.UUID,
    db: DbSession,
    principal: DeployerForm,
    environment: Annotated[str, Form(max_length=40)] = "",
    metric: Annotated[str, Form(max_length=255)] = "",
    range_: Annotated[str, Form(alias="range", max_length=8)] = "",
) -> Response:
    silence_service.expire_silence(
        db, silence_id=silence_id, audit_context=audit_context_of(request, principal)
    )
    return _back(environment, metric, range_, "silence-expired")


def _back(environment: str, metric: str, range_: str, done: str) -> Response:
    # Back to the same view; values that would not pass the page's own checks are dropped.
    return back(
        "/monitoring",
        done,
        environment=environment if environment in ENVIRONMENTS else None,
        metric=metric if METRIC.fullmatch(metric) else None,
        range=range_ if range_ in RANGES else None,
    )
