from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal, NotRequired

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from typing_extensions import TypedDict

from shipboard.core.types import (
    EnvironmentName,
    FiniteFloat,
    MetricName,
    ShortText,
    Tags,
    Timestamp,
)


# Typed dicts rather than models: a 10,000-point batch validates in half the time when pydantic
# builds no model instance per point.
class MonitoringMetricCreate(TypedDict):
    """One point; ``timestamp`` (default: when the batch arrives) and ``tags`` (default: none)
    may be left out."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    name: MetricName
    value: FiniteFloat
    timestamp: NotRequired[Timestamp | None]
    environment: EnvironmentName
    tags: NotRequired[Tags]
    source: ShortText


class MonitoringMetricRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    value: float
    timestamp: datetime
    environment: EnvironmentName
    tags: dict[str, str]
    source: str


class MonitoringMetricPage(BaseModel):
    items: list[MonitoringMetricRead]
    next_cursor: str | None = None


class MonitoringMetricFilter(BaseModel):
    name: str | None = None
    environment: EnvironmentName | None = None
    source: str | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None


class MetricBatch(TypedDict):
    """``POST /api/v1/metrics``: up to 10,000 points, stored all or nothing."""

    __pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[misc]

    metrics: Annotated[list[MonitoringMetricCreate], Field(min_length=1)]


POINTS = TypeAdapter(list[MonitoringMetricCreate])


class Accepted(BaseModel):
    accepted: int


Aggregation = Literal["avg", "min", "max", "sum", "count", "p50", "p95", "p99"]
SeriesSource = Literal["embedded", "store"]


class Series(BaseModel):
    name: str
    environment: EnvironmentName | None
    agg: Aggregation
    step_s: int
    since: datetime
    until: datetime
    tags: dict[str, str]
    points: list[tuple[datetime, float]]
    source: SeriesSource = Field(
        default="embedded",
        description="Which store answered: Shipboard's database (embedded) or the "
        "Prometheus-compatible store at SHIPBOARD_PROMETHEUS_URL (store)",
    )


def series_json(series: Series) -> bytes:
    """``series`` as pydantic writes it (the same bytes: tests/monitoring/test_series_json.py),
    by orjson: FastAPI's validation and dump of a 1,440-point series took 0.5–0.7 ms, this
    half of that."""
    return orjson.dumps(
        {field: getattr(series, field) for field in Series.model_fields},
        option=orjson.OPT_UTC_Z,
    )


class MetricNameInfo(BaseModel):
    name: str
    # The metrics store lists names only: what it cannot say is null, not an empty list.
    sources: list[str] | None = Field(
        default=None, description="Shipboard's sources of the points; null from the store"
    )
    tag_keys: list[str] | None = Field(
        default=None, description="Tag keys seen on recent points; null from the store"
    )
    points: int | None = Field(
        default=None, description="How many points the database holds; null from the store"
    )


class MetricNames(BaseModel):
    items: list[MetricNameInfo]
    source: SeriesSource = Field(
        default="embedded",
        description="Which store answered: Shipboard's database (embedded) or the "
        "Prometheus-compatible store at SHIPBOARD_PROMETHEUS_URL (store)",
    )
    since: datetime | None = Field(
        default=None, description="Start of the window the names were seen in; null: all time"
    )
    until: datetime | None = Field(default=None, description="End of that window; null: now")
