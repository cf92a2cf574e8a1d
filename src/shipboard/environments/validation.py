"""The one validator of stored configuration: every path that writes configuration calls it.

Public entry points (all pure, no database):

- ``validate_environment(data, *, complete=False) -> ValidatedEnvironment`` — a whole environment
  (``domain``, ``config``, ``features``, ``limits``). ``complete=True`` is PUT's rule (the spec's
  required config keys must be present); ``False`` is the rule for a PATCH result, for what is
  already stored, and for ``shipboard config check``.
- ``validate_environment_config(config, *, complete=False) -> EnvironmentConfig`` — ``config``
  alone (``EnvironmentConfigPatch`` when not complete).
- ``validate_limits(limits) -> EnvironmentLimitsPatch`` — ``limits`` alone.
- ``validate_model(model, data, *, loc=()) -> model`` — any pydantic shape (alert rules,
  channels, silences: ``AlertRuleCreate``, ``ChannelCreate``, ``SilenceCreate``), with the
  same errors.
- ``environment_problems(data)`` / ``config_problems(config)`` / ``model_problems(model, data)``
  — the same checks, returned as ``[{loc, msg}]`` instead of raised (gates, ``config check``).
- ``format_loc(loc)`` — ``["body", "config", "freeze_windows", 0, "timezone"]`` →
  ``config.freeze_windows[0].timezone``.

Every ``validate_*`` raises ``InvalidInput`` (422) whose ``errors`` are ``[{loc, msg}]``, each
``loc`` the full path from ``loc_prefix`` (``("body",)`` for requests by default) and whose
detail names the first one: ``config.freeze_windows[0].timezone: unknown time zone 'Mars/Olympus'``.

Sections of ``config`` checked whole: ``pipeline`` (``environments.pipeline.Pipeline``: steps with a
known stage, in order; healthcheck; watch), ``freeze_windows``, ``monitoring.scrape``,
``security`` (schedule, sla_days, semgrep_rules, osv_url), ``performance``, ``reports``,
``notification_channels``, ``external_alert_matchers``, ``promotion_checks``. Unknown top-level
keys are kept (the spec's EnvironmentConfig is open). Cron expressions must fire within a year and
time zones must be IANA names (``core/cron.py``). Outbound URL policy (SSRF) is the service's
``check_outbound_urls``, and whether promotion checks have a store to ask is
``check_metrics_store``: both depend on settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    PositiveInt,
    StrictBool,
    ValidationError,
)

from shipboard.core.cron import CronExpr, TimeZoneName
from shipboard.core.errors import InvalidInput, format_loc
from shipboard.core.types import HttpUrlStr, NonNegativeFloat, ScanType, Url
from shipboard.environments.config_sections import (
    ExternalAlertMatcher,
    PerformanceSettings,
    PromotionChecks,
    ReportSchedule,
    check_matchers,
)
from shipboard.environments.pipeline import Pipeline

Loc = Sequence[str | int]
M = TypeVar("M", bound=BaseModel)
__all__ = ["format_loc"]  # re-exported: callers format paths the way errors name them

# --- sections of config -----------------------------------------------------------------------


class FreezeWindow(BaseModel):
    """``config.freeze_windows[]``: no deploys for ``duration_minutes`` from each cron fire."""

    model_config = ConfigDict(extra="forbid")

    cron: CronExpr
    duration_minutes: Annotated[float, Field(gt=0, le=366 * 24 * 60)]
    timezone: TimeZoneName = "UTC"
    name: Annotated[str, Field(max_length=128)] | None = None
    reason: Annotated[str, Field(max_length=1024)] | None = None


LabelName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")]


class ScrapeTarget(BaseModel):
    """``config.monitoring.scrape[]``: a Prometheus endpoint the elected node scrapes."""

    model_config = ConfigDict(extra="forbid")

    url: HttpUrlStr
    interval_s: Annotated[float, Field(ge=1, le=86400)] = 60
    # Prometheus' job_name: the `job` label of every sample (monitoring/scrape.py).
    job: Annotated[str, Field(min_length=1, max_length=255, strict=True)] = "scrape"
    labels: dict[LabelName, Annotated[str, Field(max_length=1024)]] = Field(
        default_factory=dict, max_length=32
    )
    honor_labels: StrictBool = Field(
        default=False,
        description="Keep a sample's own labels where they clash with the target's (job, "
        "instance, labels); otherwise they are renamed exported_<name>, as Prometheus does",
    )


class MonitoringConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scrape: list[ScrapeTarget] = Field(default_factory=list, max_length=100)


class ScheduledScan(BaseModel):
    """``config.security.schedule[]``: a scan requested on each cron fire (UTC)."""

    model_config = ConfigDict(extra="forbid")

    type: ScanType
    target: str = Field(min_length=1, max_length=4096)
    tool: Literal["bandit", "semgrep", "checkov", "pip-audit", "trivy"] | None = None
    cron: CronExpr


class SlaDays(BaseModel):
    model_config = ConfigDict(extra="forbid")

    critical: Annotated[int, Field(ge=1, le=3650)] | None = None
    high: Annotated[int, Field(ge=1, le=3650)] | None = None
    medium: Annotated[int, Field(ge=1, le=3650)] | None = None
    low: Annotated[int, Field(ge=1, le=3650)] | None = None


class SecurityConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    schedule: list[ScheduledScan] = Field(default_factory=list, max_length=50)
    sla_days: SlaDays | None = None
    semgrep_rules: str | None = Field(default=None, min_length=1, max_length=4096)
    osv_url: HttpUrlStr | None = None


ChannelName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:\-]+$")]


class _ShipboardKeys(BaseModel):
    """Shipboard's own config keys, typed so a bad value is a 422 on write, not a 500 later."""

    model_config = ConfigDict(extra="allow")

    pipeline: Pipeline | None = None
    freeze_windows: list[FreezeWindow] | None = Field(default=None, max_length=100)
    monitoring: MonitoringConfig | None = None
    security: SecurityConfig | None = None
    performance: PerformanceSettings | None = None
    reports: list[ReportSchedule] | None = Field(default=None, max_length=50)
    notification_channels: list[ChannelName] | None = Field(default=None, max_length=50)
    external_alert_matchers: (
        Annotated[list[ExternalAlertMatcher], AfterValidator(check_matchers)] | None
    ) = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="Which alerts received from Alertmanager belong to this environment (all "
        "must hold); without it, SHIPBOARD_ALERTMANAGER_ENVIRONMENT_LABELS decides",
    )
    promotion_checks: PromotionChecks | None = None


class EnvironmentConfig(_ShipboardKeys):
    """The spec's EnvironmentConfig (PUT); unknown keys are kept."""

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


class EnvironmentConfigPatch(_ShipboardKeys):
    """Config as a PATCH (or an older version) may leave it: spec fields optional, typed."""

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


# --- limits, features, domain -----------------------------------------------------------------

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


class EnvironmentLimitsPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_concurrent_users: NonNegativeInt | None = None
    api_rate_limit: NonNegativeInt | None = None
    storage_quota_gb: NonNegativeFloat | None = None
    bandwidth_limit_gb: NonNegativeFloat | None = None
    max_deployment_frequency: NonNegativeInt | None = None
    metrics_retention_days: RetentionDays | None = None
    logs_retention_days: RetentionDays | None = None


LIMIT_KEYS = tuple(EnvironmentLimitsPatch.model_fields)

Domain = Annotated[
    str,
    Field(
        max_length=253,
        pattern=r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
        r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$",
    ),
]
FeatureFlags = dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")], StrictBool]


class ValidatedEnvironment(BaseModel):
    """A whole environment as stored (or as a PATCH leaves it), checked."""

    model_config = ConfigDict(extra="forbid")

    domain: Domain
    config: EnvironmentConfigPatch
    features: FeatureFlags = Field(default_factory=dict)
    limits: EnvironmentLimitsPatch = Field(default_factory=EnvironmentLimitsPatch)


class CompleteEnvironment(BaseModel):
    """A whole environment as PUT gives it: the spec's config keys are required."""

    model_config = ConfigDict(extra="forbid")

    domain: Domain
    config: EnvironmentConfig
    features: FeatureFlags = Field(default_factory=dict)
    limits: EnvironmentLimits | None = None


# --- entry points -----------------------------------------------------------------------------


def stored_mapping(value: object) -> dict[str, Any]:
    """A stored JSON column that should hold an object, or ``{}`` when it holds anything else
    (edited by hand, written by an older version): readers must not fail on it; the
    configuration gate and ``shipboard config check`` name it instead."""
    return value if isinstance(value, dict) else {}


def _errors(exc: ValidationError, loc_prefix: Loc) -> list[dict[str, Any]]:
    out = []
    for e in exc.errors(include_url=False):
        loc = [*loc_prefix, *(p if isinstance(p, int | str) else str(p) for p in e["loc"])]
        msg = e["msg"]
        # pydantic prefixes messages of plain ValueErrors; the path already says where.
        for prefix in ("Value error, ", "Assertion failed, "):
            msg = msg.removeprefix(prefix)
        out.append({"loc": loc, "msg": msg})
    return out


def model_problems(model: type[BaseModel], data: Any, *, loc: Loc = ()) -> list[dict[str, Any]]:
    """``[{loc, msg}]`` of ``data`` against ``model``; empty when it validates. Never raises."""
    try:
        model.model_validate(data)
    except ValidationError as exc:
        return _errors(exc, loc)
    except (
        ValueError,
        TypeError,
        OverflowError,
    ) as exc:  # a validator that raised outside pydantic
        return [{"loc": list(loc), "msg": str(exc)[:300]}]
    return []


def _raise(problems: list[dict[str, Any]]) -> None:
    first = problems[0]
    raise InvalidInput(f"{format_loc(first['loc'])}: {first['msg']}", errors=problems) from None


def validate_model(model: type[M], data: Any, *, loc: Loc = ("body",)) -> M:
    """``data`` as ``model``, or InvalidInput naming every bad path (under ``loc``)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        _raise(_errors(exc, loc))
        raise  # unreachable; keeps type checkers sure a value is returned


def validate_environment_config(
    config: Any, *, complete: bool = False, loc: Loc = ("body", "config")
) -> EnvironmentConfigPatch | EnvironmentConfig:
    """``config`` checked whole; InvalidInput naming each bad path otherwise."""
    model: type[EnvironmentConfigPatch] | type[EnvironmentConfig] = (
        EnvironmentConfig if complete else EnvironmentConfigPatch
    )
    return validate_model(model, config, loc=loc)


def validate_limits(limits: Any, *, loc: Loc = ("body", "limits")) -> EnvironmentLimitsPatch:
    """``limits`` checked; only the known limit keys, each a non-negative number."""
    return validate_model(EnvironmentLimitsPatch, limits, loc=loc)


def validate_environment(
    data: Any, *, complete: bool = False, loc: Loc = ("body",)
) -> ValidatedEnvironment:
    """A whole environment (domain, config, features, limits) checked; ``complete`` = PUT rules."""
    if complete:
        validate_model(CompleteEnvironment, data, loc=loc)
    return validate_model(ValidatedEnvironment, data, loc=loc)


def config_problems(config: Any, *, loc: Loc = ("config",)) -> list[dict[str, Any]]:
    """What is wrong with a stored ``config``, as ``[{loc, msg}]``. Never raises."""
    return model_problems(EnvironmentConfigPatch, config, loc=loc)


def environment_problems(data: Any, *, loc: Loc = ()) -> list[dict[str, Any]]:
    """What is wrong with a stored environment (domain, config, features, limits). Never raises."""
    return model_problems(ValidatedEnvironment, data, loc=loc)


def describe(problems: list[dict[str, Any]]) -> str:
    """``path: msg; path: msg`` for a reason or a log line."""
    return "; ".join(f"{format_loc(p['loc'])}: {p['msg']}" for p in problems)
