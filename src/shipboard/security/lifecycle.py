"""The rules of a finding's life, with no I/O: its state now (open, triaged, resolved), its SLA,
whether it is overdue, which triage a new scan carries forward, and the compliance score.

The repository's queries express the same rules in SQL (``repository.unresolved``); these
functions say them once in Python, for the rows those queries return and for tests."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Literal

from shipboard.environments.validation import stored_mapping
from shipboard.security.importers.common import REPORT_TRIAGER

State = Literal["open", "triaged", "resolved"]
Triage = tuple[str | None, str | None, str | None]  # status, reason, triaged_by

# Dependency-Track's weights for the compliance score.
WEIGHTS = {"critical": 10, "high": 5, "medium": 3, "low": 1}
# DefectDojo's defaults; an environment overrides them in config.security.sla_days.
DEFAULT_SLA_DAYS = {"critical": 7, "high": 30, "medium": 90, "low": 120}
NO_TRIAGE: Triage = (None, None, None)


def sla_days(environment_config: object) -> dict[str, int]:
    """Days to fix a finding of each severity in an environment of this stored config."""
    # Stored config is read as it is: whatever is not an object falls back to the defaults.
    security = stored_mapping(stored_mapping(environment_config).get("security"))
    custom = stored_mapping(security.get("sla_days"))
    return {
        severity: int(custom.get(severity, days))
        if isinstance(custom.get(severity, days), int)
        else days
        for severity, days in DEFAULT_SLA_DAYS.items()
    }


def is_triaged(triage_status: str | None, expires_at: datetime | None, now: datetime) -> bool:
    """A triage holds until it expires; one that has expired counts as none."""
    return triage_status is not None and (expires_at is None or expires_at > now)


def state(
    status: str, triage_status: str | None, triage_expires_at: datetime | None, now: datetime
) -> State:
    """Resolved when the last scan lacked it; else triaged while a triage holds; else open."""
    if status == "resolved":
        return "resolved"
    return "triaged" if is_triaged(triage_status, triage_expires_at, now) else "open"


def due_at(first_seen_at: datetime, severity: str, sla: Mapping[str, int]) -> datetime:
    """When the SLA of its severity runs out, counted from when it was first seen."""
    return first_seen_at + timedelta(days=sla[severity])


def is_overdue(current: State, due: datetime, now: datetime) -> bool:
    """Only an open finding is late: a triaged or resolved one is not waiting for a fix."""
    return current == "open" and now > due


def is_manual(triage_status: str | None, triaged_by: str | None) -> bool:
    """A person's triage, as opposed to one a report gave (suppressions, VEX) or none."""
    return triage_status is not None and triaged_by not in (None, REPORT_TRIAGER)


def carried_triage(known: Triage | None, reported: tuple[str, str] | None) -> Triage:
    """The triage a finding has after a scan saw it: a person's carries forward; one the
    previous report gave is this report's to give again or lift."""
    if known is not None and is_manual(known[0], known[2]):
        return known
    if reported is not None:
        return (*reported, REPORT_TRIAGER)
    return NO_TRIAGE


def reopens(status: str | None) -> bool:
    """A finding seen again after it was resolved is reopened (counted, and flagged)."""
    return status == "resolved"


def compliance_score(open_counts: Iterable[tuple[str, int]]) -> float:
    """100 less the weighted count of the environment's open, untriaged findings, at least 0."""
    penalty = sum(WEIGHTS[severity] * count for severity, count in open_counts)
    return float(max(0, 100 - penalty))


def severity_counts(severities: Iterable[str]) -> dict[str, int]:
    """How many of each severity, every severity present."""
    counts = dict.fromkeys(WEIGHTS, 0)
    for severity in severities:
        counts[severity] += 1
    return counts
