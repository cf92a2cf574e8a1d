"""Annotated field types shared by every domain's schemas."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

from pydantic import (
    AfterValidator,
    AnyUrl,
    AwareDatetime,
    BeforeValidator,
    Field,
    HttpUrl,
    TypeAdapter,
)

EnvironmentName = Literal["development", "staging", "production"]
ENVIRONMENTS: tuple[EnvironmentName, ...] = ("development", "staging", "production")

DeploymentStatus = Literal["pending", "building", "deploying", "success", "failed", "rolled_back"]
ScanType = Literal["dependency", "sast", "container", "iac"]
ScanStatus = Literal["pending", "running", "completed", "failed"]
Severity = Literal["low", "medium", "high", "critical"]
LogLevel = Literal["debug", "info", "warn", "error"]
Role = Literal["viewer", "deployer", "service", "admin"]
# The one role set: the users table's check, token and JWT validation, "any signed-in user".
ROLES: tuple[Role, ...] = get_args(Role)

_any_url = TypeAdapter(AnyUrl)
_http_url = TypeAdapter(HttpUrl)


def _valid_url(value: str) -> str:
    # Validate as a URL but keep the caller's spelling (pydantic would add a trailing slash).
    _any_url.validate_python(value)
    return value


def _valid_http_url(value: str) -> str:
    _http_url.validate_python(value)
    return value


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be a finite number")
    return value


Url = Annotated[str, Field(max_length=2048), AfterValidator(_valid_url)]
HttpUrlStr = Annotated[str, Field(max_length=2048), AfterValidator(_valid_http_url)]


def _not_a_number(value: object) -> object:
    # pydantic reads 0, 3588 or "1700000000" as Unix seconds; the API documents (and means)
    # ISO 8601 date-times, and a number here is far more often a mistake than an epoch.
    if type(value) is str and value[4:5] == "-":
        # YYYY-…: no number has a dash there. This runs for every point of every batch, and
        # the regular expression below was an eighth of a 10,000-point request.
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("expected an ISO 8601 date-time such as 2026-01-01T00:00:00Z")
    if isinstance(value, str) and _NUMBER.fullmatch(value.strip()):
        raise ValueError("expected an ISO 8601 date-time such as 2026-01-01T00:00:00Z")
    return value


def _representable_in_utc(value: datetime) -> datetime:
    # Every time is stored and compared in UTC; 0001-01-01T00:00:00+14:00 or
    # 9999-12-31T23:59:59-14:00 is a valid ISO 8601 text whose UTC falls off the calendar.
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise ValueError("out of the supported range of dates once converted to UTC") from None
    return value


_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
Timestamp = Annotated[
    AwareDatetime, BeforeValidator(_not_a_number), AfterValidator(_representable_in_utc)
]
DateTime = Annotated[
    datetime, BeforeValidator(_not_a_number), AfterValidator(_representable_in_utc)
]


def _not_bool(value: object) -> object:
    # pydantic's lax mode reads true/false as 1.0/0.0: a measurement of "false" is a mistake.
    if isinstance(value, bool):
        raise ValueError("expected a number, not a boolean")
    return value


FiniteFloat = Annotated[float, BeforeValidator(_not_bool), AfterValidator(_finite)]
NonNegativeFloat = Annotated[
    float, Field(ge=0), BeforeValidator(_not_bool), AfterValidator(_finite)
]
MetricName = Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:.]*$", max_length=255)]
Tags = dict[Annotated[str, Field(max_length=255)], Annotated[str, Field(max_length=1024)]]
ShortText = Annotated[str, Field(min_length=1, max_length=255)]
Version = Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,127}$")]
CommitSha = Annotated[
    str, Field(pattern=r"^[0-9a-fA-F]{7,40}$"), AfterValidator(lambda v: v.lower())
]
