"""Matching a report's findings to the identities already known in its scope, with no I/O: which
findings are new, which are seen again (and reopened), which known identities the report lacks.
The result is rows in the shapes the repository writes in bulk (``rows.FINDING_COLUMNS`` …).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shipboard.db import bulk
from shipboard.security import lifecycle
from shipboard.security.importers import ParsedFinding, ParsedReport
from shipboard.security.importers.common import path_of


@dataclass
class Plan:
    """What an import writes. ``findings``, ``created`` identities and ``occurrences`` are staged
    (no read sees a finding of a scan whose import is in progress); identities seen again are
    moved to their new finding when the import is flipped, and ``changed`` — those reopened,
    adopted, or whose triage changes — get their other columns then too."""

    findings: list[tuple[Any, ...]] = field(default_factory=list)
    created: list[tuple[Any, ...]] = field(default_factory=list)
    # The index of the finding each created identity was first seen as (ascending), so that a
    # chunk of findings is written with its own new identities and occurrences.
    created_for: list[int] = field(default_factory=list)
    changed: list[tuple[Any, ...]] = field(default_factory=list)
    occurrences: list[tuple[Any, ...]] = field(default_factory=list)
    gone: list[Any] = field(default_factory=list)
    new: int = 0
    reopened: int = 0


def is_partial(report: ParsedReport) -> bool:
    """A run that did not read everything resolves only findings in files it read."""
    outcome = report.outcome
    return outcome.failure is not None or outcome.covered is not None or bool(outcome.excluded)


def plan(
    report: ParsedReport,
    known: Iterable[Any],
    *,
    environment: str,
    target: str,
    scan_id: uuid.UUID,
    now: datetime,
) -> Plan:
    """Rows for the report's findings under their identities, and the identities it lacks.

    ``known``: rows of the scope's identities (``repository.known_identities``); those with
    target NULL are from before targets, adopted when seen, resolved as before when not."""
    scoped: dict[str, Any] = {}
    legacy: dict[str, Any] = {}
    for row in known:
        (legacy if row.target is None else scoped)[row.fingerprint] = row
    claimed: set[str] = set()

    def match(parsed: ParsedFinding) -> Any:
        prints = (parsed.fingerprint, parsed.legacy_fingerprint)
        for candidate in (book.get(fp) for fp in prints if fp for book in (scoped, legacy)):
            if candidate is not None and candidate.id not in claimed:
                claimed.add(candidate.id)
                return candidate
        return None

    out = Plan()
    finding_ids = bulk.uuid7_strings(len(report.findings))
    identity_ids = iter(bulk.uuid7_strings(len(report.findings)))
    for index, (parsed, finding_id) in enumerate(zip(report.findings, finding_ids, strict=True)):
        out.findings.append(
            (
                finding_id,
                scan_id,
                parsed.severity,
                parsed.title,
                parsed.description or parsed.title,
                parsed.location,
                parsed.cwe_id,
                parsed.remediation,
                False,
                now,
            )
        )
        identity = match(parsed)
        was_resolved = identity is not None and lifecycle.reopens(identity.status)
        triage = lifecycle.carried_triage(
            None
            if identity is None
            else (identity.triage_status, identity.triage_reason, identity.triaged_by),
            parsed.triage,
        )
        if identity is None:
            identity_id = next(identity_ids)
            out.created.append(
                (
                    identity_id,
                    environment,
                    report.scan_type,
                    report.tool,
                    target,
                    parsed.fingerprint,
                    parsed.rule_id,
                    "open",
                    now,
                    now,
                    0,
                    finding_id,
                    *triage,
                )
            )
            out.created_for.append(index)
            out.new += 1
        else:
            identity_id = identity.id
            out.reopened += was_resolved
            where = (identity.target, identity.fingerprint)
            was = (identity.triage_status, identity.triage_reason, identity.triaged_by)
            if was_resolved or where != (target, parsed.fingerprint) or was != triage:
                out.changed.append(
                    (
                        identity_id,
                        target,
                        parsed.fingerprint,
                        "open",
                        None if was_resolved else identity.resolved_at,
                        identity.reopened_count + was_resolved,
                        now,
                        finding_id,
                        *triage,
                    )
                )
        out.occurrences.append(
            (finding_id, identity_id, parsed.occurrences, was_resolved, parsed.suppressed)
        )
    partial = is_partial(report)
    # Unclaimed identities from before targets go as they would have gone before.
    out.gone = [
        row
        for row in (*scoped.values(), *legacy.values())
        if row.status == "open"
        and row.id not in claimed
        and (not partial or report.outcome.may_resolve(path_of(row.location)))
    ]
    return out
