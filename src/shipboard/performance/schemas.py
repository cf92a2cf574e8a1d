from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shipboard.core.types import (
    EnvironmentName,
    FiniteFloat,
    MetricName,
    ShortText,
    Tags,
    Timestamp,
)


class PerformanceMetricCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: MetricName
    environment: EnvironmentName
    timestamp: Timestamp | None = None
    value: FiniteFloat
    unit: ShortText
    tags: Tags = Field(default_factory=dict)
    benchmark: FiniteFloat | None = Field(default=None, description="Expected baseline value")
    threshold: FiniteFloat | None = Field(default=None, description="Alert threshold")


class PerformanceMetricRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    environment: EnvironmentName
    timestamp: datetime
    value: float
    unit: str
    tags: dict[str, str]
    benchmark: float | None = None
    threshold: float | None = None


class PerformanceMetricPage(BaseModel):
    items: list[PerformanceMetricRead]
    next_cursor: str | None = None


class PerformanceMetricFilter(BaseModel):
    name: str | None = None
    environment: EnvironmentName | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
