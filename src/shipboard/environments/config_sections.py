"""The shapes of the ``config.performance`` and ``config.reports`` sections of an environment.
Environments validate them; performance and reports read them (like ``pipeline.py`` for
``config.pipeline``), so a base domain needs nothing from the domains built on it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, field_validator

from shipboard.core.cron import CronExpr, TimeZoneName
from shipboard.core.time import parse_duration
from shipboard.core.types import FiniteFloat


class PerformanceRule(BaseModel):
    """``config.performance.rules[]``: how results whose name matches ``match`` are judged."""

    model_config = ConfigDict(extra="forbid")

    match: str = Field(default="*", min_length=1, max_length=255, description="Glob on the name")
    model: Literal["t_test", "z_score", "percentage", "static"] = "t_test"
    direction: Literal["lower", "higher"] | None = None
    window: PositiveInt = Field(default=20, le=1000)
    n: PositiveInt = Field(default=5, le=100)
    min_samples: Annotated[int, Field(ge=2, le=1000)] = 5
    p_value: Annotated[float, Field(gt=0, lt=1)] = 0.01
    min_change_pct: Annotated[float, Field(ge=0)] = 5.0
    percentage: Annotated[float, Field(gt=0)] = 10.0
    z: Annotated[float, Field(gt=0)] = 3.0
    limit: FiniteFloat | None = None


class PerformanceSettings(BaseModel):
    """``config.performance`` of an environment."""

    model_config = ConfigDict(extra="forbid")

    rules: list[PerformanceRule] = Field(default_factory=list, max_length=200)
    higher_is_better: list[Annotated[str, Field(max_length=255)]] = Field(
        default_factory=list, max_length=200
    )


ReportKind = Literal["dora", "security", "monitoring", "performance"]


class ReportSchedule(BaseModel):
    """``config.reports[]``: a report delivered to channels on a cron schedule."""

    model_config = ConfigDict(extra="forbid")

    kind: ReportKind
    cron: Annotated[CronExpr, Field(description="Five-field cron, in `timezone`")]
    timezone: TimeZoneName = "UTC"
    channels: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=20
    )
    period: Annotated[
        str, Field(max_length=16, description="What the report covers, like 7d or 30d")
    ] = "7d"

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        parse_duration(value)
        return value
