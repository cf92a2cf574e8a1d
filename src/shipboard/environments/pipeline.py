"""The shape of an environment's ``config.pipeline``: the steps Shipboard's worker runs, the
healthcheck and the post-deploy watch. Environments validate it; deployments and pipelines
read it."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shipboard.core.promql import check_query
from shipboard.core.types import HttpUrlStr, MetricName

Stage = Literal["build", "deploy", "verify"]
STAGE_ORDER: dict[str, int] = {"build": 0, "deploy": 1, "verify": 2}


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    stage: Stage
    run: str = Field(min_length=1, max_length=65536)
    timeout_s: float = Field(default=600, gt=0, le=86400)
    env: dict[str, str] = Field(default_factory=dict)


class Healthcheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: HttpUrlStr
    expect_status: int = Field(default=200, ge=100, le=599)
    timeout_s: float = Field(default=5, gt=0, le=300)
    retries: int = Field(default=3, ge=0, le=100)
    interval_s: float = Field(default=2, ge=0, le=600)


class WatchCheck(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    kind: Literal["threshold", "compare", "promql"] = "threshold"
    metric: MetricName | None = None
    # kind promql: a query of the metrics store (SHIPBOARD_PROMETHEUS_URL), compared with
    # ``op`` and ``value``; $environment, $version … are filled in per deployment.
    query: str | None = Field(default=None, max_length=4096)
    aggregate: Literal["avg", "min", "max", "sum", "count"] = "avg"
    op: Literal[">", ">=", "<", "<=", "==", "!="] = ">"
    value: float | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    direction: Literal["increase", "decrease"] = "increase"
    min_effect: float = Field(default=0.1, ge=0, description="Relative change that counts")
    alpha: float = Field(default=0.05, gt=0, lt=1)

    @model_validator(mode="after")
    def _what_it_measures(self) -> WatchCheck:
        if self.kind == "promql":
            if not self.query:
                raise ValueError("a promql check needs a query")
            if self.metric is not None:
                raise ValueError("a promql check has a query, not a metric")
            check_query(self.query)
        else:
            if self.metric is None:
                raise ValueError(f"a {self.kind} check needs a metric")
            if self.query is not None:
                raise ValueError(f"a {self.kind} check has a metric, not a query")
        return self


class Watch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    window_s: float = Field(gt=0, le=86400)
    interval_s: float = Field(default=60, gt=0, le=3600)
    failure_limit: int = Field(default=0, ge=0)
    checks: list[WatchCheck] = Field(default_factory=list)


class Pipeline(BaseModel):
    model_config = ConfigDict(extra="forbid")

    steps: list[Step] = Field(min_length=1)
    healthcheck: Healthcheck | None = None
    watch: Watch | None = None

    @model_validator(mode="after")
    def _stages_in_order(self) -> Pipeline:
        ranks = [STAGE_ORDER[s.stage] for s in self.steps]
        if ranks != sorted(ranks):
            raise ValueError("steps must be ordered build, then deploy, then verify")
        return self
