"""Shapes of integrations, their webhook answers and their deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from shipboard.core import patterns
from shipboard.core.types import EnvironmentName, Timestamp

IntegrationKind = Literal["github", "gitlab"]
Outcome = Literal[
    "recorded", "updated", "unchanged", "duplicate", "ignored", "ping", "rejected", "invalid"
]
TheirEnvironment = Annotated[str, Field(min_length=1, max_length=255)]


class IntegrationWrite(BaseModel):
    """``PUT /api/v1/integrations/{kind}``: create or replace an integration."""

    model_config = ConfigDict(extra="forbid")

    secret: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description=(
            "The webhook secret (GitHub) or token (GitLab); stored encrypted, never returned. "
            "Required when creating; omit to keep the current one."
        ),
    )
    env_map: dict[TheirEnvironment, EnvironmentName] = Field(
        default_factory=dict,
        max_length=200,
        description="Their environment (or workflow) name -> ours; unmapped names of ours map "
        "to themselves",
    )
    deploy_workflow: str = Field(
        default="*deploy*",
        min_length=1,
        max_length=255,
        description="GitHub: a completed workflow_run whose name matches this glob is recorded",
    )
    workflow_environment: EnvironmentName = Field(
        default="production",
        description="GitHub: where a matching workflow run deploys to when its name does not say",
    )

    @field_validator("deploy_workflow")
    @classmethod
    def _glob_compiles(cls, value: str) -> str:
        problem = patterns.glob_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value


class IntegrationRead(BaseModel):
    kind: IntegrationKind
    webhook_path: str = Field(description="Where the provider sends its webhooks")
    secret_set: bool = Field(description="Always true: the secret itself is never returned")
    env_map: dict[str, str]
    deploy_workflow: str
    workflow_environment: str
    created_at: datetime
    updated_at: datetime
    updated_by: str


class IntegrationList(BaseModel):
    items: list[IntegrationRead]


class WebhookAnswer(BaseModel):
    """What Shipboard made of a webhook (also kept in the deliveries list)."""

    outcome: Outcome
    detail: str
    delivery: uuid.UUID = Field(description="This delivery's id in the deliveries list")
    deployment_id: uuid.UUID | None = None


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: IntegrationKind
    event: str | None = None
    delivery_id: str | None = Field(
        default=None, description="X-GitHub-Delivery or X-Gitlab-Event-UUID"
    )
    received_at: datetime
    status_code: int = Field(description="What Shipboard answered")
    outcome: Outcome
    detail: str
    external_id: str | None = Field(default=None, description="The provider's deployment id")
    deployment_id: uuid.UUID | None = None


class DeliveryPage(BaseModel):
    items: list[DeliveryRead]
    next_cursor: str | None = None


class DeliveryFilter(BaseModel):
    outcome: Outcome | None = None
    since: Timestamp | None = None
    until: Timestamp | None = None
