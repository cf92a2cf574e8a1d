from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shipboard.core.types import (
    EnvironmentName,
    FiniteFloat,
    ShortText,
    Tags,
    Timestamp,
)

# Benchmark names come from test ids (``tests/test_x.py::test_y[param].mean``) and k6 threshold
# expressions (``p(95)<50``), so they are freer than metric names: any printable text.
BenchmarkName = Annotated[str, Field(min_length=1, max_length=255, pattern=r"^[^\x00-\x1f\x7f]+$")]
MAX_BATCH = 10_000


class PerformanceMetricCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: BenchmarkName
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


class PerformanceBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: list[PerformanceMetricCreate] = Field(min_length=1, max_length=MAX_BATCH)


class RegressionRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    environment: str
    name: str
    tags: dict[str, str]
    unit: str
    version: str | None
    commit_sha: str | None
    metric_id: uuid.UUID
    value: float = Field(description="The newest result")
    current: float = Field(description="What was compared: the mean of the last n for t_test")
    baseline: float | None
    delta_pct: float | None = Field(description="(current - baseline) / |baseline| in percent")
    p_value: float | None
    model: str = Field(description="threshold, static, percentage, t_test or z_score")
    direction: str
    reason: str
    status: Literal["open", "resolved"]
    detected_at: datetime
    updated_at: datetime
    resolved_at: datetime | None


class RegressionList(BaseModel):
    items: list[RegressionRead]


class SeriesVerdict(BaseModel):
    """What the newest result of one series was judged, after an ingest."""

    name: str
    tags: dict[str, str]
    status: Literal["ok", "regression", "insufficient_data"]
    model: str
    value: float
    baseline: float | None
    delta_pct: float | None
    p_value: float | None
    reason: str


class IngestResult(BaseModel):
    accepted: int
    format: str | None = None
    regressions: int
    verdicts: list[SeriesVerdict]
