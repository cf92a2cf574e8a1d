from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt

from shipboard.core.types import (
    CommitSha,
    DeploymentStatus,
    EnvironmentName,
    LogLevel,
    ShortText,
    Timestamp,
    Url,
    Version,
)


class DeploymentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    environment: EnvironmentName
    version: Version
    commit_sha: CommitSha
    logs_url: Url | None = None
    artifacts_url: Url | None = None


class DeploymentRead(BaseModel):
    """The spec's DeploymentConfig."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    environment: EnvironmentName
    version: str
    commit_sha: str
    status: DeploymentStatus
    build_time: NonNegativeInt | None = None
    deploy_time: NonNegativeInt | None = None
    created_at: datetime
    completed_at: datetime | None = None
    triggered_by: str
    logs_url: str | None = None
    artifacts_url: str | None = None
    error_message: str | None = None
    rollback_from: uuid.UUID | None = None


class DeploymentPage(BaseModel):
    items: list[DeploymentRead]
    next_cursor: str | None = None


class DeploymentFilter(BaseModel):
    environment: EnvironmentName | None = None
    status: DeploymentStatus | None = None
    triggered_by: str | None = None
    commit_sha: CommitSha | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None


class DeploymentLogCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    level: LogLevel
    message: str = Field(max_length=65536)
    source: ShortText
    metadata: dict[str, Any] | None = None
    timestamp: Timestamp | None = None


class DeploymentLogRead(BaseModel):
    id: uuid.UUID
    deployment_id: uuid.UUID
    level: LogLevel
    message: str
    timestamp: datetime
    source: str
    metadata: dict[str, Any] | None = None


class DeploymentLogPage(BaseModel):
    items: list[DeploymentLogRead]
    next_cursor: str | None = None
