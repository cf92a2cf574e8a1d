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
