"""The configuration file's shape (``shipboard schema`` prints it) and the diff/apply API's shapes.

The file reuses each domain's own write schema, so the file, the API and the CLI accept exactly
the same values: an environment entry is a ``PUT /api/v1/environments/{name}`` body, an alert
rule is a ``POST /api/v1/alert-rules`` body, and so on.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shipboard.alerting.schemas import AlertRuleCreate
from shipboard.core.types import EnvironmentName
from shipboard.environments.schemas import (
    Domain,
    EnvironmentConfigPatch,
    EnvironmentLimitsPatch,
    FeatureFlags,
)
from shipboard.integrations.schemas import IntegrationKind, IntegrationWrite
from shipboard.notifications.schemas import ChannelCreate

MAX_RULES = 1000
MAX_CHANNELS = 200


class EnvironmentSpec(BaseModel):
    """An environment as the file describes it: what a PATCH may leave stored, typed."""

    model_config = ConfigDict(extra="forbid")

    domain: Domain
    config: EnvironmentConfigPatch = Field(default_factory=EnvironmentConfigPatch)
    features: FeatureFlags = Field(default_factory=dict)
    limits: EnvironmentLimitsPatch = Field(default_factory=EnvironmentLimitsPatch)


class ConfigDocument(BaseModel):
    """Shipboard's whole desired configuration. Credentials are written as `${VAR}` references,
    resolved from the environment of whoever runs `shipboard diff` or `shipboard apply`."""

    model_config = ConfigDict(
        extra="forbid",
        title="Shipboard configuration",
        json_schema_extra={"$id": "https://shipboard.dev/schema/config-v1.json"},
    )

    version: Literal[1] = Field(description="The file format's version")
    environments: dict[EnvironmentName, EnvironmentSpec] = Field(
        default_factory=dict,
        description="Environments named here are replaced whole (domain, config, features, "
        "limits); their secrets are kept. Environments not named are left as they are.",
    )
    alert_rules: list[AlertRuleCreate] = Field(default_factory=list, max_length=MAX_RULES)
    channels: list[ChannelCreate] = Field(
        default_factory=list,
        max_length=MAX_CHANNELS,
        description="Notification channels",
    )
    integrations: dict[IntegrationKind, IntegrationWrite] = Field(
        default_factory=dict,
        description="GitHub/GitLab webhooks; `secret` is required (as a reference)",
    )

    @model_validator(mode="after")
    def _names_unique(self) -> ConfigDocument:
        for field, items in (("alert_rules", self.alert_rules), ("channels", self.channels)):
            seen: set[str] = set()
            for item in items:
                if item.name in seen:
                    raise ValueError(f"{field}: the name {item.name!r} appears twice")
                seen.add(item.name)
        for kind, integration in self.integrations.items():
            if integration.secret is None:
                raise ValueError(f"integrations.{kind}.secret is required")
        return self


class ApplyRequest(BaseModel):
    """A resolved document (references already replaced) and how to apply it."""

    model_config = ConfigDict(extra="forbid")

    document: dict[str, Any] = Field(description="A ConfigDocument (see `shipboard schema`)")
    prune: bool = Field(
        default=False,
        description="Remove alert rules and channels the document does not name (never "
        "environments)",
    )
    dry_run: bool = False
    expect_revision: str | None = Field(
        default=None,
        max_length=64,
        description="Refuse (409) unless the live configuration is still at this revision",
    )


class DiffRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    document: dict[str, Any]
    prune: bool = False


class FieldChange(BaseModel):
    path: str = Field(description="Dotted path inside the object")
    before: Any = None
    after: Any = None


class ObjectChange(BaseModel):
    kind: Literal["environment", "alert_rule", "channel", "integration"]
    name: str
    action: Literal["create", "update", "delete", "unmanaged"] = Field(
        description="`unmanaged`: live but not in the document, kept (``prune`` would delete "
        "alert rules and channels)"
    )
    fields: list[FieldChange] = Field(default_factory=list)


class ConfigDiff(BaseModel):
    revision: str = Field(description="The live configuration's revision the diff was taken at")
    changed: bool
    changes: list[ObjectChange]


class ConfigApplied(ConfigDiff):
    applied: bool = Field(description="False for a dry run or when nothing changed")
    new_revision: str


class LiveConfig(BaseModel):
    revision: str
    document: dict[str, Any] = Field(
        description="The live configuration as a ConfigDocument; credentials appear as "
        "`${VAR}` references"
    )
    variables: list[str] = Field(description="The variables the document refers to")
