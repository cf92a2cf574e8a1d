from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

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
    commit_timestamp: Timestamp | None = None
    logs_url: Url | None = None
    artifacts_url: Url | None = None
    force: bool = Field(default=False, description="Skip the gates (admins only; audited)")


class RollbackRequest(BaseModel):
    """Optional body of a rollback; without one, a rollback is not forced."""

    model_config = ConfigDict(extra="forbid")

    force: bool = Field(
        default=False,
        description="Skip approval and freezes (admins only; audited)",
    )


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


class GateResultRead(BaseModel):
    gate: str
    passed: bool
    reason: str
    measured: dict[str, Any] = Field(default_factory=dict)


class Approval(BaseModel):
    required: bool
    approved_by: str | None = None
    approved_at: datetime | None = None


class DeploymentDetail(DeploymentRead):
    """A deployment with what Shipboard knows beyond the spec's record."""

    managed: bool = Field(description="Run by Shipboard's pipeline (else reported by its caller)")
    commit_timestamp: datetime | None = None
    forced: bool = False
    gates: list[GateResultRead] = Field(default_factory=list)
    gate_violations: list[str] = Field(
        default_factory=list,
        description="Gates this deployment failed without being blocked: only deployments "
        "recorded from GitHub/GitLab webhooks, which report what already happened, can have any",
    )
    analysis: list[dict[str, Any]] = Field(default_factory=list)
    approval: Approval
    verify_time: int | None = None
    cancel_requested_by: str | None = None
    watch_state: str | None = Field(
        default=None, description="Post-deploy watch: running, passed, failed or stopped"
    )


class StatusUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["building", "deploying", "success", "failed"]
    error_message: str | None = Field(default=None, max_length=4096)
    build_time: NonNegativeInt | None = None
    deploy_time: NonNegativeInt | None = None


class LogBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    logs: list[DeploymentLogCreate] = Field(min_length=1, max_length=10_000)


class Accepted(BaseModel):
    accepted: int


class LogFilter(BaseModel):
    level: LogLevel | None = None
    source: str | None = None
    since: Timestamp | None = None
