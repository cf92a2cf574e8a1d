from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shipboard.core.time import utcnow
from shipboard.db.base import Base, check_in
from shipboard.db.types import GUID, JSONType, UTCDateTime

SCAN_TYPES = ("dependency", "sast", "container", "iac")
SCAN_STATUSES = ("pending", "running", "completed", "failed")
SEVERITIES = ("low", "medium", "high", "critical")


class SecurityScan(Base):
    __tablename__ = "security_scans"
    __table_args__ = (
        sa.CheckConstraint(check_in("type", SCAN_TYPES), name="type"),
        sa.CheckConstraint(check_in("status", SCAN_STATUSES), name="status"),
        sa.Index("idx_security_scans_environment_status", "environment", "status"),
        sa.Index("idx_security_scans_started_at", sa.text("started_at DESC")),
        sa.Index("idx_security_scans_type", "type"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    type: Mapped[str] = mapped_column(sa.Text, nullable=False)
    environment: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("environments.name"), nullable=False
    )
    status: Mapped[str] = mapped_column(sa.Text, nullable=False)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    summary: Mapped[dict[str, Any] | None] = mapped_column(JSONType)
    error_message: Mapped[str | None] = mapped_column(sa.Text)


class SecurityFinding(Base):
    __tablename__ = "security_findings"
    __table_args__ = (
        sa.CheckConstraint(check_in("severity", SEVERITIES), name="severity"),
        sa.Index("idx_security_findings_scan_severity", "scan_id", "severity"),
        sa.Index("idx_security_findings_created_at", sa.text("created_at DESC")),
        sa.Index("idx_security_findings_resolved", "resolved", "severity"),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    scan_id: Mapped[uuid.UUID] = mapped_column(
        GUID, sa.ForeignKey("security_scans.id", ondelete="CASCADE"), nullable=False
    )
    severity: Mapped[str] = mapped_column(sa.Text, nullable=False)
    title: Mapped[str] = mapped_column(sa.Text, nullable=False)
    description: Mapped[str] = mapped_column(sa.Text, nullable=False)
    location: Mapped[str | None] = mapped_column(sa.Text)
    cwe_id: Mapped[str | None] = mapped_column(sa.Text)
    remediation: Mapped[str | None] = mapped_column(sa.Text)
    resolved: Mapped[bool | None] = mapped_column(sa.Boolean, default=False)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=utcnow)


class FindingIdentity(Base):
    """One finding across scans: its fingerprint within an environment, scan type, tool and
    target, when it was first seen, whether it is open now, and a manual triage that carries
    forward. ``target`` is what was scanned ("" when the scan did not say); NULL only on
    identities from before targets (migration 20261203_0017), which the next scan that sees
    them adopts."""

    __tablename__ = "finding_identities"
    __table_args__ = (
        sa.UniqueConstraint(
            "environment",
            "scan_type",
            "tool",
            "target",
            "fingerprint",
            name="finding_identities_scope_fingerprint_key",
        ),
        sa.CheckConstraint(check_in("status", ("open", "resolved")), name="status"),
        sa.CheckConstraint(
            "triage_status IS NULL OR "
            + check_in("triage_status", ("fixed", "false_positive", "accepted_risk")),
            name="triage_status",
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    environment: Mapped[str] = mapped_column(
        sa.Text, sa.ForeignKey("environments.name"), nullable=False
    )
    scan_type: Mapped[str] = mapped_column(sa.Text, nullable=False)
    tool: Mapped[str] = mapped_column(sa.Text, nullable=False)
    target: Mapped[str | None] = mapped_column(sa.Text)
    fingerprint: Mapped[str] = mapped_column(sa.Text, nullable=False)
    rule_id: Mapped[str] = mapped_column(sa.Text, nullable=False)
    status: Mapped[str] = mapped_column(sa.Text, nullable=False)
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reopened_count: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=0)
    latest_finding_id: Mapped[uuid.UUID | None] = mapped_column(GUID)
    triage_status: Mapped[str | None] = mapped_column(sa.Text)
    triage_reason: Mapped[str | None] = mapped_column(sa.Text)
    triaged_by: Mapped[str | None] = mapped_column(sa.Text)
    triage_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FindingOccurrence(Base):
    """Links a spec finding row to its identity, with what the spec's row has no room for."""

    __tablename__ = "finding_occurrences"

    finding_id: Mapped[uuid.UUID] = mapped_column(
        GUID, sa.ForeignKey("security_findings.id", ondelete="CASCADE"), primary_key=True
    )
    identity_id: Mapped[uuid.UUID] = mapped_column(
        GUID, sa.ForeignKey("finding_identities.id", ondelete="CASCADE"), nullable=False
    )
    occurrences: Mapped[int] = mapped_column(sa.Integer, nullable=False, default=1)
    reopened: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    suppressed: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)


class ScanRequest(Base):
    """What to run for a scan requested through the API (the spec's scan row has no room)."""

    __tablename__ = "scan_requests"

    scan_id: Mapped[uuid.UUID] = mapped_column(
        GUID, sa.ForeignKey("security_scans.id", ondelete="CASCADE"), primary_key=True
    )
    target: Mapped[str] = mapped_column(sa.Text, nullable=False)
    tool: Mapped[str] = mapped_column(sa.Text, nullable=False)
    requested_by: Mapped[str] = mapped_column(sa.Text, nullable=False)
    worker: Mapped[str | None] = mapped_column(sa.Text)


class SecurityImport(Base):
    """An import in progress, one per scope (environment, scan type, tool, target): the guard
    that keeps two imports of the same scope from interleaving their chunks. ``expires_at`` is
    a lease the import renews with every chunk; one that lapsed (its process died) is taken
    over by the next import of the scope, which first discards what the dead one staged."""

    __tablename__ = "security_imports"

    scope: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    scan_id: Mapped[uuid.UUID] = mapped_column(
        GUID, sa.ForeignKey("security_scans.id", ondelete="CASCADE"), nullable=False
    )
    started_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
