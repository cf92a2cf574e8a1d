from __future__ import annotations

import gzip
import json
import zlib
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Body, Header, Query, Request, Response
from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from sqlalchemy.orm import Session

from shipboard.auth.deps import AnyUser, ServiceOrAdmin
from shipboard.core import jsonshape
from shipboard.core.bodylimit import read_limited_body, too_large
from shipboard.core.errors import InvalidInput, ShipboardError
from shipboard.core.openapi import RPC_STATUS_ERRORS
from shipboard.core.problems import Problem
from shipboard.core.telemetry import note_ingest
from shipboard.core.time import utcnow
from shipboard.core.types import DateTime, EnvironmentName, MetricName
from shipboard.environments import repository as environments
from shipboard.environments.deps import spend_budget_on_loop
from shipboard.http.db import RequestDbDep
from shipboard.monitoring import otlp, reading, service
from shipboard.monitoring.schemas import (
    Accepted,
    Aggregation,
    MetricBatch,
    MetricNames,
    Series,
    SeriesSource,
    series_json,
)

router = APIRouter(
    tags=["monitoring"], responses={401: {"model": Problem}, 403: {"model": Problem}}
)


@router.post(
    "/api/v1/metrics",
    response_model=Accepted,
    responses={
        409: {"model": Problem},
        413: {"model": Problem},
        422: {"model": Problem},
        429: {"model": Problem},
    },
)
async def ingest(
    batch: Annotated[MetricBatch, Body()],
    request: Request,
    db: RequestDbDep,
    caller: ServiceOrAdmin,
    idempotency_key: Annotated[
        str | None,
        Header(max_length=255, description="A retried batch with the same key is stored once"),
    ] = None,
) -> Accepted:
    """Store up to 10,000 points, all or nothing."""
    note_ingest(request.state, "metrics", points=len(batch["metrics"]))
    for environment in sorted({m["environment"] for m in batch["metrics"]}):
        await spend_budget_on_loop(request, db, caller, environment)
    return await db.run(
        service.ingest_batch,
        batch=batch,
        scope=f"metrics:{caller.name}",
        idempotency_key=idempotency_key,
        forwarding=request.app.state.forwarding,
    )


# Which store a read answers from: one parameter for every route that reads metrics.
SourceParam = Annotated[
    SeriesSource | None,
    Query(
        description="Read Shipboard's database (embedded) or the metrics store at "
        "SHIPBOARD_PROMETHEUS_URL (store); default: the store when one is configured"
    ),
]


@router.get(
    "/api/v1/metrics/series",
    response_model=Series,
    responses={422: {"model": Problem}, 503: {"model": Problem}},
)
async def series(
    request: Request,
    db: RequestDbDep,
    _: AnyUser,
    name: Annotated[MetricName, Query()],
    environment: EnvironmentName | None = None,
    since: DateTime | None = None,
    until: DateTime | None = None,
    step: Annotated[
        int | None, Query(ge=1, le=31_536_000, description="Bucket width in seconds")
    ] = None,
    agg: Aggregation = "avg",
    source: SourceParam = None,
) -> Response:
    """A metric bucketed by `step` and aggregated; filter by tags with `tag.<key>=<value>`.
    Answers 503 when it reads the metrics store and the store cannot answer."""
    _with_offsets(since=since, until=until)
    tags = {
        k[4:]: v for k, v in request.query_params.items() if k.startswith("tag.") and len(k) > 4
    }
    answer = await reading.read(
        db,
        service.pick_store(request.app.state.metrics_store, source),
        service.series,
        name=name,
        environment=environment,
        since=since,
        until=until,
        step_s=step,
        agg=agg,
        tags=tags,
    )
    return Response(series_json(answer), media_type="application/json")


@router.get(
    "/api/v1/metrics/names",
    response_model=MetricNames,
    responses={422: {"model": Problem}, 503: {"model": Problem}},
)
async def names(
    request: Request,
    db: RequestDbDep,
    _: AnyUser,
    environment: EnvironmentName | None = None,
    since: DateTime | None = None,
    until: DateTime | None = None,
    source: SourceParam = None,
) -> MetricNames:
    """Metric names seen between `since` and `until`: from the database with their sources,
    tag keys and number of points (default: all points); from the metrics store, the names
    only (default: the last 24 hours). Answers 503 when the store cannot answer."""
    _with_offsets(since=since, until=until)
    return await reading.read(
        db,
        service.pick_store(request.app.state.metrics_store, source),
        service.metric_names,
        environment=environment,
        since=since,
        until=until,
    )


def _with_offsets(**moments: datetime | None) -> None:
    # A time without an offset would be read as the server's local time, or UTC, by guess.
    for label, moment in moments.items():
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput(
                f"{label} needs a UTC offset",
                errors=[{"loc": ["query", label], "msg": "naive time"}],
            )


PROTOBUF = "application/x-protobuf"
MAX_DECOMPRESSED = 64 * 1024 * 1024


def _decompress(body: bytes, encoding: str, limit: int) -> bytes:
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "deflate"):
        raise InvalidInput(f"unsupported Content-Encoding {encoding!r}; use gzip or none")
    # Bounded streaming decompression: a small bomb cannot expand past the limit.
    inflater = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    try:
        data = inflater.decompress(body, limit + 1)
    except (zlib.error, gzip.BadGzipFile) as exc:
        raise InvalidInput("request body is not valid " + encoding) from exc
    if len(data) > limit or inflater.unconsumed_tail:
        raise too_large(limit)
    return data


async def _otlp_request(request: Request) -> tuple[ExportMetricsServiceRequest, bool]:
    cap = int(request.app.state.settings.max_request_mb * 1024 * 1024)
    raw = await read_limited_body(request, cap)
    body = _decompress(
        raw, request.headers.get("content-encoding", "").lower(), min(cap, MAX_DECOMPRESSED)
    )
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    message = ExportMetricsServiceRequest()
    try:
        if content_type == PROTOBUF:
            message.ParseFromString(body)
            return message, True
        if content_type == "application/json":
            # The body cap checked the JSON's shape on the wire; a gzip body is checked here,
            # inflated: 58 KB of gzip held 20 million empty objects (2.7 GB once parsed).
            jsonshape.check(body)
            document = json.loads(body.decode("utf-8"))
            if not isinstance(document, dict):
                # json_format.Parse takes "" or [] for an empty export; an export is an object.
                raise OtlpBadRequest("an OTLP JSON request is an object")
            json_format.ParseDict(document, message, ignore_unknown_fields=True)
            return message, False
    except (DecodeError, json_format.ParseError, ValueError, RecursionError) as exc:
        raise OtlpBadRequest(f"cannot decode the OTLP request: {type(exc).__name__}") from exc
    raise OtlpUnsupported(f"Content-Type must be {PROTOBUF} or application/json")


class OtlpBadRequest(ShipboardError):
    status_code = 400
    title = "Bad OTLP request"
    type_slug = "otlp-bad-request"


class OtlpUnsupported(ShipboardError):
    status_code = 415
    title = "Unsupported media type"
    type_slug = "unsupported-media-type"


@router.post(
    "/v1/metrics",
    responses={
        200: {"content": {PROTOBUF: {}, "application/json": {}}},
        400: {"model": Problem},
        413: {"model": Problem},
        415: {"model": Problem},
        429: {"model": Problem},
    },
    openapi_extra={
        RPC_STATUS_ERRORS: True,
        "requestBody": {
            "required": True,
            "content": {
                PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
                "application/json": {"schema": {"type": "object"}},
            },
        },
    },
)
async def otlp_metrics(request: Request, db: RequestDbDep, caller: ServiceOrAdmin) -> Response:
    """OTLP/HTTP metrics export (protobuf or JSON, optionally gzip)."""
    message, binary = await _otlp_request(request)

    def convert(session: Session) -> otlp.Converted:
        converted = otlp.convert(
            message, known_environments=environments.names(session), now=utcnow()
        )
        service.settle_cumulative(session, converted=converted)
        return converted

    converted = await db.run(convert)
    note_ingest(
        request.state,
        "otlp",
        points=len(converted.rows) + converted.rejected,
        rejected=converted.rejected,
    )
    for environment in sorted({row["environment"] for row in converted.rows}):
        await spend_budget_on_loop(request, db, caller, environment)
    await db.run(service.store_rows, rows=converted.rows, forwarding=request.app.state.forwarding)
    answer = otlp.response(converted)
    if binary:
        return Response(answer.SerializeToString(), media_type=PROTOBUF)
    return Response(json_format.MessageToJson(answer), media_type="application/json")
