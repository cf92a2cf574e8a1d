"""What the report endpoints answer (``format=json``), typed so that OpenAPI describes them.
The monitoring report's shape is ``reports.monitoring.MonitoringReport``; a schedule's
(``config.reports[]``) is ``environments.config_sections.ReportSchedule``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from shipboard.performance.schemas import RegressionRead
from shipboard.security.schemas import CurrentFinding


class _Shape(BaseModel):
    # additionalProperties: false, so a key the report gains without its model fails the tests
    # that validate real answers (the endpoints send the computed JSON as it is).
    model_config = ConfigDict(extra="forbid")


FrequencyBucket = Literal["daily", "weekly", "monthly", "yearly"]
LeadTimeBucket = Literal[
    "less_than_one_day",
    "less_than_one_week",
    "less_than_one_month",
    "less_than_six_months",
    "more_than_six_months",
]


class DeploymentFrequency(_Shape):
    per_day: float = Field(description="Deployments that reached production per day")
    bucket: FrequencyBucket | None = Field(description="null: no deployment in the period")
    deployments: int


class LeadTime(_Shape):
    median_seconds: float | None = Field(description="Median commit-to-deploy; null: none")
    bucket: LeadTimeBucket | None
    deployments: int = Field(description="Deployments with a commit time")


class ChangeFailureRate(_Shape):
    value: float | None = Field(description="failed / completed; null: nothing completed")
    failed: int
    completed: int


class TimeToRestore(_Shape):
    median_seconds: float | None = Field(description="Median over closed restore episodes")
    restorations: int
    unrestored: Annotated[int, Field(ge=0, le=1)] = Field(
        description="1 when a failure is still unrestored at the end of the period"
    )


class DoraWeek(_Shape):
    week_start: str = Field(description="The Monday (UTC) of the calendar week, YYYY-MM-DD")
    deployments: int
    days_with_deployment: int
    lead_time_median_seconds: float | None
    change_failure_rate: float | None
    failed: int
    completed: int
    time_to_restore_median_seconds: float | None
    restorations: int


class DoraReport(_Shape):
    """The four DORA metrics over ``[since, until)``, with the counts behind each."""

    environment: str
    since: str = Field(description="ISO 8601 with offset")
    until: str = Field(description="ISO 8601 with offset; excluded")
    deployment_frequency: DeploymentFrequency
    lead_time_for_changes: LeadTime
    change_failure_rate: ChangeFailureRate
    time_to_restore: TimeToRestore
    weekly: list[DoraWeek]


class SeriesPoint(_Shape):
    t: str | None = Field(description="ISO 8601")
    v: float


class BenchmarkSummary(_Shape):
    name: str
    tags: dict[str, str]
    unit: str
    direction: str
    points: int
    first_at: str | None
    last_at: str | None
    latest: float
    latest_version: str | None
    min: float
    max: float
    mean: float
    median: float
    change_pct: float | None = Field(description="Median of the last fifth against the first")
    trend: Literal["flat", "improving", "worsening"]
    benchmark: float | None
    threshold: float | None
    regressed: bool
    series: list[SeriesPoint] = Field(description="The newest points, at most 500")


class PerformanceReport(_Shape):
    """Per benchmark series its trend and standing; the regressions found in the period."""

    environment: str
    since: str
    until: str
    benchmarks: list[BenchmarkSummary]
    regressions: list[RegressionRead]
    open_regressions: int


class CweCount(_Shape):
    cwe_id: str
    open: int


class ScoreAt(_Shape):
    at: str | None
    type: str
    compliance_score: float | None


class ReportFinding(CurrentFinding):
    model_config = ConfigDict(extra="forbid", from_attributes=True)

    environment: str


class SecurityReport(_Shape):
    """Open findings by severity and type, overdue, time to resolve, top CWEs, scores."""

    environment: str
    open_by_severity: dict[str, int]
    open_by_type: dict[str, int]
    open: int
    triaged: int
    overdue: int
    mean_time_to_resolve_s: dict[str, float | None] = Field(description="Per severity")
    top_cwes: list[CweCount]
    score_over_time: list[ScoreAt]
    findings: list[ReportFinding] = Field(description="The open findings")
