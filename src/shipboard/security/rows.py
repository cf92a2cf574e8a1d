"""The shapes of the rows an import writes in bulk (``db.bulk``): the columns of each table, in
the order ``matching.plan`` builds its tuples."""

from __future__ import annotations

from shipboard.db import bulk

FINDING_COLUMNS = (
    bulk.Column("id", "uuid"),
    bulk.Column("scan_id", "uuid"),
    bulk.Column("severity", "text"),
    bulk.Column("title", "text"),
    bulk.Column("description", "text"),
    bulk.Column("location", "text"),
    bulk.Column("cwe_id", "text"),
    bulk.Column("remediation", "text"),
    bulk.Column("resolved", "bool"),
    bulk.Column("created_at", "timestamp"),
)
IDENTITY_COLUMNS = (
    bulk.Column("id", "uuid"),
    bulk.Column("environment", "text"),
    bulk.Column("scan_type", "text"),
    bulk.Column("tool", "text"),
    bulk.Column("target", "text"),
    bulk.Column("fingerprint", "text"),
    bulk.Column("rule_id", "text"),
    bulk.Column("status", "text"),
    bulk.Column("first_seen_at", "timestamp"),
    bulk.Column("last_seen_at", "timestamp"),
    bulk.Column("reopened_count", "int"),
    bulk.Column("latest_finding_id", "uuid"),
    bulk.Column("triage_status", "text"),
    bulk.Column("triage_reason", "text"),
    bulk.Column("triaged_by", "text"),
)
SEEN_COLUMNS = (
    # An identity adopted from before targets, or from the previous fingerprint scheme, takes
    # this scan's target and its current fingerprint.
    bulk.Column("target", "text"),
    bulk.Column("fingerprint", "text"),
    bulk.Column("status", "text"),
    bulk.Column("resolved_at", "timestamp"),
    bulk.Column("reopened_count", "int"),
    bulk.Column("last_seen_at", "timestamp"),
    bulk.Column("latest_finding_id", "uuid"),
    bulk.Column("triage_status", "text"),
    bulk.Column("triage_reason", "text"),
    bulk.Column("triaged_by", "text"),
)
OCCURRENCE_COLUMNS = (
    bulk.Column("finding_id", "uuid"),
    bulk.Column("identity_id", "uuid"),
    bulk.Column("occurrences", "int"),
    bulk.Column("reopened", "bool"),
    bulk.Column("suppressed", "bool"),
)
ID = bulk.Column("id", "uuid")
RESOLVED_IDENTITY = (bulk.Column("status", "text"), bulk.Column("resolved_at", "timestamp"))
RESOLVED_FINDING = (bulk.Column("resolved", "bool"), bulk.Column("resolved_at", "timestamp"))
