from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shipboard.core.types import (
    EnvironmentName,
    FiniteFloat,
    MetricName,
    ShortText,
    Tags,
    Timestamp,
)


class MonitoringMetricCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: MetricName
    value: FiniteFloat
    timestamp: Timestamp | None = None
    environment: EnvironmentName
    tags: Tags = Field(default_factory=dict)
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


class MetricBatch(BaseModel):
    """``POST /api/v1/metrics``: up to 10,000 points, stored all or nothing."""

    model_config = ConfigDict(extra="forbid")

    metrics: list[MonitoringMetricCreate] = Field(min_length=1)


class Accepted(BaseModel):
    accepted: int


Aggregation = Literal["avg", "min", "max", "sum", "count", "p50", "p95", "p99"]


class Series(BaseModel):
    name: str
    environment: EnvironmentName | None
    agg: Aggregation
    step_s: int
    since: datetime
    until: datetime
    tags: dict[str, str]
    points: list[tuple[datetime, float]]


class MetricNameInfo(BaseModel):
    name: str
    sources: list[str]
    tag_keys: list[str]
    points: int


class MetricNames(BaseModel):
    items: list[MetricNameInfo]
