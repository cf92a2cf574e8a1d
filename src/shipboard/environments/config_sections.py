"""The shapes of the ``config.performance``, ``config.reports``,
``config.external_alert_matchers`` and ``config.promotion_checks`` sections of an environment.
Environments validate them; performance, reports, alerting and deployments read them (like
``pipeline.py`` for ``config.pipeline``), so a base domain needs nothing from the domains built
on it."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    field_validator,
    model_validator,
)

from shipboard.core import patterns
from shipboard.core.cron import CronExpr, TimeZoneName
from shipboard.core.promql import MAX_QUERY_CHARS, check_query
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


class ExternalAlertMatcher(BaseModel):
    """``config.external_alert_matchers[]``: what an alert received from Alertmanager must
    carry to belong to this environment; all of them must hold (Alertmanager's matchers:
    ``=~``/``!~`` match the whole value, RE2 syntax, in linear time; a missing label is ``""``)."""

    model_config = ConfigDict(extra="forbid")

    label: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]
    value: Annotated[str, Field(max_length=1024, strict=True)]
    op: Literal["=", "!=", "=~", "!~"] = "="

    @model_validator(mode="after")
    def _valid_regex(self) -> ExternalAlertMatcher:
        if self.op in ("=~", "!~") and (problem := patterns.regex_problem(self.value)):
            raise ValueError(f"value {self.value[:80]!r}: {problem}")
        return self

    def as_silence_matcher(self) -> dict[str, object]:
        """The same matcher in the shape silences keep (``alerting/matching.py`` matches both)."""
        return {
            "name": self.label,
            "value": self.value,
            "isRegex": self.op in ("=~", "!~"),
            "isEqual": self.op in ("=", "=~"),
        }


def matches_empty(matcher: ExternalAlertMatcher) -> bool:
    """Whether ``matcher`` holds for an alert without its label (value ``""``)."""
    if matcher.op in ("=", "!="):
        hit = matcher.value == ""
    else:
        hit = bool(patterns.regex_matches(matcher.value, ""))
    return hit if matcher.op in ("=", "=~") else not hit


def check_matchers(matchers: list[ExternalAlertMatcher]) -> list[ExternalAlertMatcher]:
    """Refuse matchers that every alert without those labels satisfies: they would put every
    unrelated alert in the environment (Alertmanager refuses such silences for the same reason)."""
    if all(matches_empty(m) for m in matchers):
        raise ValueError(
            "at least one matcher must need a label value (as in Alertmanager): these match "
            "alerts that carry none of the labels"
        )
    return matchers


# What a promotion check's query may name: the deployment being created is not running yet, so
# only what it is (its environment and version), not when it started.
PROMOTION_VARIABLES = ("environment", "version")


class PromotionCheck(BaseModel):
    """``config.promotion_checks[]``: a query of the metrics store (SHIPBOARD_PROMETHEUS_URL)
    whose every sample must satisfy ``op value`` before a deployment to the environment is
    created. No answer, or a store that cannot give one, blocks."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\- ]+$")
    query: str = Field(
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        description="An instant query; $environment and $version are the deployment's",
    )
    op: Literal[">", ">=", "<", "<=", "==", "!="]
    value: FiniteFloat

    @field_validator("query")
    @classmethod
    def _parses(cls, query: str) -> str:
        check_query(query, variables=PROMOTION_VARIABLES)
        return query


def _unique_names(checks: list[PromotionCheck]) -> list[PromotionCheck]:
    names = [check.name for check in checks]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"promotion check names must be unique: {', '.join(twice)}")
    return checks


PromotionChecks = Annotated[
    list[PromotionCheck], Field(max_length=20), AfterValidator(_unique_names)
]
