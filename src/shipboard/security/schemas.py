from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, NonNegativeInt, model_validator

from shipboard.core.types import EnvironmentName, ScanStatus, ScanType, Severity, Timestamp


class SecurityScanSummary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    total_findings: NonNegativeInt
    critical_findings: NonNegativeInt
    high_findings: NonNegativeInt
    medium_findings: NonNegativeInt
    low_findings: NonNegativeInt
    scan_duration_ms: NonNegativeInt
    compliance_score: float | None = Field(default=None, ge=0, le=100)


class SecurityScanCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: ScanType
    environment: EnvironmentName
    status: ScanStatus = "pending"
    started_at: Timestamp | None = None
    completed_at: Timestamp | None = None
    summary: SecurityScanSummary | None = None
    error_message: str | None = None

    @model_validator(mode="after")
    def _completed_after_started(self) -> SecurityScanCreate:
        if self.started_at and self.completed_at and self.completed_at < self.started_at:
            raise ValueError("completed_at is before started_at")
        return self


class SecurityScanRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    type: ScanType
    environment: EnvironmentName
    status: ScanStatus
    started_at: datetime
    completed_at: datetime | None = None
    summary: SecurityScanSummary | None = None
    error_message: str | None = None


class SecurityScanPage(BaseModel):
    items: list[SecurityScanRead]
    next_cursor: str | None = None


class SecurityScanFilter(BaseModel):
    environment: EnvironmentName | None = None
    status: ScanStatus | None = None
    type: ScanType | None = None


class SecurityFindingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scan_id: uuid.UUID
    severity: Severity
    title: str = Field(min_length=1, max_length=1024)
    description: str = Field(max_length=65536)
    location: str | None = None
    cwe_id: str | None = Field(default=None, pattern=r"^CWE-[0-9]+$")
    remediation: str | None = None
    resolved: bool = False
    resolved_at: Timestamp | None = None


class SecurityFindingRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    scan_id: uuid.UUID
    severity: Severity
    title: str
    description: str
    location: str | None = None
    cwe_id: str | None = None
    remediation: str | None = None
    resolved: bool
    resolved_at: datetime | None = None
    created_at: datetime


class SecurityFindingPage(BaseModel):
    items: list[SecurityFindingRead]
    next_cursor: str | None = None


class SecurityFindingFilter(BaseModel):
    scan_id: uuid.UUID | None = None
    severity: Severity | None = None
    resolved: bool | None = None


class Triage(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["fixed", "false_positive", "accepted_risk"]
    reason: str = Field(min_length=1, max_length=2000)
    expires_at: Timestamp | None = None


class CurrentFinding(SecurityFindingRead):
    """A finding as it stands now: its latest occurrence and its identity across scans."""

    fingerprint: str
    tool: str
    target: str | None = Field(
        description="what was scanned (image, path, artifact); null: imported before targets"
    )
    scan_type: ScanType
    status: Literal["open", "resolved", "triaged"]
    first_seen_at: datetime
    reopened_count: int
    occurrences: int
    triage_status: str | None = None
    triage_reason: str | None = None
    due_at: datetime = Field(description="first seen + the SLA days of its severity")
    overdue: bool
    resolved_after_s: float | None = None


class CurrentFindingPage(BaseModel):
    items: list[CurrentFinding]
    next_cursor: str | None = None


class ScanRun(BaseModel):
    """``POST /api/v1/security/scans``: run a scanner on a target inside the allowed roots."""

    model_config = ConfigDict(extra="forbid")

    type: ScanType
    environment: EnvironmentName
    target: str = Field(min_length=1, max_length=4096)
    tool: Literal["bandit", "semgrep", "checkov", "pip-audit", "trivy"] | None = None
