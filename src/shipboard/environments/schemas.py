from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt

from shipboard.core.types import EnvironmentName, HttpUrlStr, NonNegativeFloat, Url


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


class EnvironmentLimits(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_concurrent_users: NonNegativeInt
    api_rate_limit: NonNegativeInt
    storage_quota_gb: NonNegativeFloat
    bandwidth_limit_gb: NonNegativeFloat
    max_deployment_frequency: NonNegativeInt = Field(description="Deployments per hour")


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
