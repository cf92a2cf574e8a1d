from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shipboard.core.cron import CronExpr, TimeZoneName
from shipboard.core.time import parse_duration

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
