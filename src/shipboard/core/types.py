"""Annotated field types shared by every domain's schemas."""

from __future__ import annotations

import math
from typing import Annotated, Literal

from pydantic import AfterValidator, AnyUrl, AwareDatetime, Field, HttpUrl, TypeAdapter

EnvironmentName = Literal["development", "staging", "production"]
ENVIRONMENTS: tuple[EnvironmentName, ...] = ("development", "staging", "production")

DeploymentStatus = Literal["pending", "building", "deploying", "success", "failed", "rolled_back"]
ScanType = Literal["dependency", "sast", "container", "iac"]
ScanStatus = Literal["pending", "running", "completed", "failed"]
Severity = Literal["low", "medium", "high", "critical"]
LogLevel = Literal["debug", "info", "warn", "error"]
Role = Literal["viewer", "deployer", "service", "admin"]

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
Timestamp = AwareDatetime
FiniteFloat = Annotated[float, AfterValidator(_finite)]
NonNegativeFloat = Annotated[float, Field(ge=0), AfterValidator(_finite)]
MetricName = Annotated[str, Field(pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:.]*$", max_length=255)]
Tags = dict[Annotated[str, Field(max_length=255)], Annotated[str, Field(max_length=1024)]]
ShortText = Annotated[str, Field(min_length=1, max_length=255)]
Version = Annotated[str, Field(pattern=r"^[0-9A-Za-z][0-9A-Za-z.+_-]{0,127}$")]
CommitSha = Annotated[
    str, Field(pattern=r"^[0-9a-fA-F]{7,40}$"), AfterValidator(lambda v: v.lower())
]
