"""Shapes of alert rules, alerts and silences."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shipboard.core.promql import MAX_QUERY_CHARS, check_query
from shipboard.core.types import EnvironmentName, MetricName, Severity, Timestamp

Comparison = Literal[">", ">=", "<", "<="]
RuleAggregation = Literal["avg", "min", "max", "sum", "count", "p50", "p95", "p99"]
# What a promql rule's query may name: the rule's own environment, filled in when it runs.
RULE_VARIABLES = ("environment",)
SPEC_KEYS = {
    "threshold": ("tags", "agg", "window_s", "op", "value", "for_s", "keep_firing_for_s"),
    "anomaly": (
        "tags",
        "window_s",
        "method",
        "sensitivity",
        "history_s",
        "min_points",
        "for_s",
        "keep_firing_for_s",
    ),
    "promql": ("query", "op", "value", "for_s", "keep_firing_for_s"),
}


class AlertRuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\- ]+$")
    kind: Literal["threshold", "anomaly", "promql"]
    environment: EnvironmentName
    metric: MetricName | None = Field(default=None, description="threshold and anomaly rules")
    query: str | None = Field(
        default=None,
        max_length=MAX_QUERY_CHARS,
        description="promql rules: an instant query of SHIPBOARD_PROMETHEUS_URL; $environment "
        "is the rule's environment. Each sample it returns is an alert of its own (its labels "
        "added), active while `value op value` holds, or always when `value` is not set",
    )
    tags: dict[str, str] = Field(default_factory=dict)
    agg: RuleAggregation = "avg"
    window_s: float = Field(default=300, gt=0, le=86400 * 7)
    op: Comparison = ">"
    value: float | None = None
    for_s: float = Field(default=0, ge=0, le=86400)
    keep_firing_for_s: float = Field(default=0, ge=0, le=86400)
    method: Literal["robust_zscore", "ewma"] = "robust_zscore"
    sensitivity: float = Field(default=3.0, gt=0, le=100)
    history_s: float = Field(default=86400, gt=0, le=86400 * 90)
    min_points: int = Field(default=20, ge=3, le=100_000)
    severity: Severity = "medium"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    channels: list[str] = Field(default_factory=list)
    enabled: bool = True

    @model_validator(mode="after")
    def _what_it_reads(self) -> AlertRuleCreate:
        if self.value is not None and not math.isfinite(self.value):
            raise ValueError("value must be a finite number")
        if self.kind == "promql":
            if not self.query:
                raise ValueError("a promql rule needs a query")
            if self.metric is not None:
                raise ValueError("a promql rule has a query, not a metric")
            check_query(self.query, variables=RULE_VARIABLES)
            return self
        if self.metric is None:
            raise ValueError(f"a {self.kind} rule needs a metric")
        if self.query is not None:
            raise ValueError(f"a {self.kind} rule has a metric, not a query")
        if self.kind == "threshold" and self.value is None:
            raise ValueError("a threshold rule needs a value")
        return self

    def spec(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SPEC_KEYS[self.kind]}


class AlertRuleUpdate(BaseModel):
    """``PATCH /api/v1/alert-rules/{id}``: turn a rule off (its alerts resolve) or on again."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool


class AlertRuleRead(AlertRuleCreate):
    id: uuid.UUID
    last_evaluated_at: datetime | None = None
    last_error: str | None = Field(default=None, description="Why the last evaluation failed")
    health: Literal["ok", "error", "unknown"] = "unknown"


class AlertRulePage(BaseModel):
    items: list[AlertRuleRead]


class AlertRead(BaseModel):
    id: uuid.UUID
    rule_id: uuid.UUID
    rule: str
    fingerprint: str
    state: Literal["pending", "firing", "resolved"]
    value: float | None
    starts_at: datetime | None
    ends_at: datetime | None
    labels: dict[str, str]
    annotations: dict[str, str]
    silenced: bool = False
    transitions: list[dict[str, Any]]


class AlertPage(BaseModel):
    items: list[AlertRead]
    next_cursor: str | None = None


class Matcher(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1)
    value: str
    isRegex: bool = False  # noqa: N815 - Alertmanager's spelling
    isEqual: bool = True  # noqa: N815


class SilenceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    matchers: list[Matcher] = Field(min_length=1)
    starts_at: Timestamp | None = None
    ends_at: Timestamp
    comment: str = Field(min_length=1, max_length=1024)


class SilenceRead(BaseModel):
    id: uuid.UUID
    matchers: list[Matcher]
    starts_at: datetime
    ends_at: datetime
    created_by: str
    comment: str
    active: bool


class SilencePage(BaseModel):
    items: list[SilenceRead]


# --- Alertmanager's webhook (v4), as Alertmanager sends it -----------------------------------

LabelMap = dict[Annotated[str, Field(max_length=1024)], Annotated[str, Field(max_length=4096)]]


class AlertmanagerAlert(BaseModel):
    # Alertmanager adds fields between releases; the ones read here are typed and required.
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: LabelMap = Field(max_length=200)
    annotations: LabelMap = Field(default_factory=dict, max_length=200)
    startsAt: Timestamp  # noqa: N815 - Alertmanager's spelling; a naive time is refused (422)
    endsAt: Timestamp | None = None  # noqa: N815
    generatorURL: str = Field(default="", max_length=4096)  # noqa: N815
    fingerprint: str = Field(min_length=1, max_length=64)


class AlertmanagerWebhook(BaseModel):
    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = Field(default="", max_length=1024)
    externalURL: str = Field(default="", max_length=4096)  # noqa: N815
    alerts: list[AlertmanagerAlert] = Field(max_length=10_000)


class ExternalAlertRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    fingerprint: str
    alertname: str
    status: Literal["firing", "resolved"]
    environment: str | None
    labels: dict[str, str]
    annotations: dict[str, str]
    starts_at: datetime
    ends_at: datetime | None
    generator_url: str | None
    receiver: str | None
    updated_at: datetime


class ExternalAlertPage(BaseModel):
    items: list[ExternalAlertRead]


class Received(BaseModel):
    received: int
