from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, PositiveInt, StrictBool

from shipboard.core.types import EnvironmentName, HttpUrlStr, NonNegativeFloat, Url
from shipboard.performance.schemas import PerformanceSettings
from shipboard.reports.schemas import ReportSchedule


class EnvironmentConfig(BaseModel):
    """The spec's EnvironmentConfig; unknown keys are kept (pipelines, later features)."""

    model_config = ConfigDict(extra="allow")

    database_url: Url
    redis_url: Url | None = None
    supabase_url: HttpUrlStr
    supabase_anon_key: str
    clerk_publishable_key: str
    stripe_publishable_key: str
    resend_api_key: str
    google_translate_api_key: str | None = None
    api_rate_limit: NonNegativeInt
    max_file_size_mb: NonNegativeInt
    # Shipboard's own keys, typed so that a bad value is a 422 on write, not a surprise later.
    performance: PerformanceSettings | None = None
    reports: list[ReportSchedule] | None = Field(default=None, max_length=50)


RetentionDays = Annotated[
    PositiveInt,
    Field(le=36600, description="Days kept (metrics default 90, deployment logs default 365)"),
]


class EnvironmentLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_concurrent_users: NonNegativeInt
    api_rate_limit: NonNegativeInt
    storage_quota_gb: NonNegativeFloat
    bandwidth_limit_gb: NonNegativeFloat
    max_deployment_frequency: NonNegativeInt = Field(description="Deployments per hour")
    # Shipboard's own limits beyond the spec's; optional, with defaults where they are used.
    metrics_retention_days: RetentionDays | None = None
    logs_retention_days: RetentionDays | None = None


class SecretRead(BaseModel):
    key: str
    updated_at: datetime | None


class EnvironmentRead(BaseModel):
    """An environment as the API shows it: config redacted for non-admins, secret names only."""

    name: EnvironmentName
    domain: str
    config: dict[str, Any]
    secrets: list[str]
    features: dict[str, bool]
    limits: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None


class EnvironmentPage(BaseModel):
    items: list[EnvironmentRead]
    next_cursor: str | None = None


class EnvironmentConfigPatch(BaseModel):
    """Config as a PATCH may leave it: every spec field optional, but typed when present."""

    model_config = ConfigDict(extra="allow")

    database_url: Url | None = None
    redis_url: Url | None = None
    supabase_url: HttpUrlStr | None = None
    supabase_anon_key: str | None = None
    clerk_publishable_key: str | None = None
    stripe_publishable_key: str | None = None
    resend_api_key: str | None = None
    google_translate_api_key: str | None = None
    api_rate_limit: NonNegativeInt | None = None
    max_file_size_mb: NonNegativeInt | None = None
    performance: PerformanceSettings | None = None
    reports: list[ReportSchedule] | None = Field(default=None, max_length=50)


class EnvironmentLimitsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_concurrent_users: NonNegativeInt | None = None
    api_rate_limit: NonNegativeInt | None = None
    storage_quota_gb: NonNegativeFloat | None = None
    bandwidth_limit_gb: NonNegativeFloat | None = None
    max_deployment_frequency: NonNegativeInt | None = None
    metrics_retention_days: RetentionDays | None = None
    logs_retention_days: RetentionDays | None = None


Domain = Annotated[
    str,
    Field(
        max_length=253,
        pattern=r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
        r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
    ),
]
FeatureFlags = dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")], StrictBool]


class EnvironmentUpdate(BaseModel):
    """PUT: the whole environment; config is checked against the spec's EnvironmentConfig."""

    model_config = ConfigDict(extra="forbid")

    domain: Domain
    config: EnvironmentConfig
    features: FeatureFlags = Field(default_factory=dict)
    limits: EnvironmentLimits | None = None


class EnvironmentMerged(BaseModel):
    """The result of a PATCH, checked before it is stored."""

    model_config = ConfigDict(extra="forbid")

    domain: Domain
    config: EnvironmentConfigPatch
    features: FeatureFlags
    limits: EnvironmentLimitsPatch


class FeatureToggle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool


SecretKey = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class SecretWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, max_length=65536)


class SecretList(BaseModel):
    items: list[SecretRead]


class TableUsage(BaseModel):
    table: str
    rows: int
    bytes: int = Field(description="Estimated bytes of this environment's rows, indexes included")


class EnvironmentUsage(BaseModel):
    """What an environment stores, table by table, against ``limits.storage_quota_gb``."""

    environment: str
    tables: list[TableUsage]
    rows: int
    bytes: int
    quota_bytes: int | None = Field(description="storage_quota_gb × 2^30; null without a quota")
    used_pct: float | None
    method: str = Field(description="How bytes were estimated")
    measured_at: datetime
