from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from shipboard.core.types import EnvironmentName

# The shapes of stored configuration live with the validator; imported here for the routes.
from shipboard.environments.validation import (
    Domain,
    EnvironmentConfig,
    EnvironmentConfigPatch,
    EnvironmentLimits,
    EnvironmentLimitsPatch,
    FeatureFlags,
    RetentionDays,
)

__all__ = [
    "Domain",
    "EnvironmentConfig",
    "EnvironmentConfigPatch",
    "EnvironmentLimits",
    "EnvironmentLimitsPatch",
    "FeatureFlags",
    "RetentionDays",
]


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


class EnvironmentUpdate(BaseModel):
    """PUT: the whole environment; config is checked against the spec's EnvironmentConfig."""

    model_config = ConfigDict(extra="forbid")

    domain: Domain
    config: EnvironmentConfig
    features: FeatureFlags = Field(default_factory=dict)
    limits: EnvironmentLimits | None = None


class FeatureToggle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    enabled: StrictBool


SecretKey = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class SecretWrite(BaseModel):
    model_config = ConfigDict(extra="forbid")

    value: str = Field(min_length=1, max_length=65536)


class SecretList(BaseModel):
    items: list[SecretRead]
