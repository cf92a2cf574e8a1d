"""The data model of ``spec/data-model.md``, written down once for the schema tests.

Column tuples are (type family, nullable, default kind). Default kinds: ``now``, ``uuid``,
``empty_json``, ``false`` or None.
"""

from __future__ import annotations

T, U, J, TS, INT, N, B = "text", "uuid", "json", "timestamp", "integer", "numeric", "boolean"

SPEC_TABLES: dict[str, dict[str, tuple[str, bool, str | None]]] = {
    "environments": {
        "name": (T, False, None),
        "domain": (T, False, None),
        "config": (J, False, None),
        "secrets": (J, True, None),
        "features": (J, True, "empty_json"),
        "limits": (J, True, "empty_json"),
        "created_at": (TS, True, "now"),
        "updated_at": (TS, True, "now"),
    },
    "deployment_configs": {
        "id": (U, False, "uuid"),
        "environment": (T, False, None),
        "version": (T, False, None),
        "commit_sha": (T, False, None),
        "status": (T, False, None),
        "build_time": (INT, True, None),
        "deploy_time": (INT, True, None),
        "created_at": (TS, True, "now"),
        "completed_at": (TS, True, None),
        "triggered_by": (T, False, None),
        "logs_url": (T, True, None),
        "artifacts_url": (T, True, None),
        "error_message": (T, True, None),
        "rollback_from": (U, True, None),
    },
    "monitoring_metrics": {
        "id": (U, False, "uuid"),
        "name": (T, False, None),
        "value": (N, False, None),
        "timestamp": (TS, True, "now"),
        "environment": (T, False, None),
        "tags": (J, True, "empty_json"),
        "source": (T, False, None),
    },
    "security_scans": {
        "id": (U, False, "uuid"),
        "type": (T, False, None),
        "environment": (T, False, None),
        "status": (T, False, None),
        "started_at": (TS, True, "now"),
        "completed_at": (TS, True, None),
        "summary": (J, True, None),
        "error_message": (T, True, None),
    },
    "security_findings": {
        "id": (U, False, "uuid"),
        "scan_id": (U, False, None),
        "severity": (T, False, None),
        "title": (T, False, None),
        "description": (T, False, None),
        "location": (T, True, None),
        "cwe_id": (T, True, None),
        "remediation": (T, True, None),
        "resolved": (B, True, "false"),
        "resolved_at": (TS, True, None),
        "created_at": (TS, True, "now"),
    },
    "performance_metrics": {
        "id": (U, False, "uuid"),
        "name": (T, False, None),
        "environment": (T, False, None),
        "timestamp": (TS, True, "now"),
        "value": (N, False, None),
        "unit": (T, False, None),
        "tags": (J, True, "empty_json"),
        "benchmark": (N, True, None),
        "threshold": (N, True, None),
    },
    "deployment_logs": {
        "id": (U, False, "uuid"),
        "deployment_id": (U, False, None),
        "level": (T, False, None),
        "message": (T, False, None),
        "timestamp": (TS, True, "now"),
        "source": (T, False, None),
        "metadata": (J, True, None),
    },
}

SPEC_PRIMARY_KEYS = {table: ["name" if table == "environments" else "id"] for table in SPEC_TABLES}

# DESIGN.md §3: on PostgreSQL the partitioned tables' key is (id, timestamp), so timestamp is
# NOT NULL there. The one deviation from the spec.
PARTITIONED = ("monitoring_metrics", "performance_metrics", "deployment_logs")

SPEC_CHECKS = {
    ("deployment_configs", "status"): {
        "pending",
        "building",
        "deploying",
        "success",
        "failed",
        "rolled_back",
    },
    ("security_scans", "type"): {"dependency", "sast", "container", "iac"},
    ("security_scans", "status"): {"pending", "running", "completed", "failed"},
    ("security_findings", "severity"): {"low", "medium", "high", "critical"},
    ("deployment_logs", "level"): {"debug", "info", "warn", "error"},
}

# (table, column) -> (referred table, referred column, ON DELETE)
SPEC_FOREIGN_KEYS = {
    ("deployment_configs", "environment"): ("environments", "name", None),
    ("deployment_configs", "rollback_from"): ("deployment_configs", "id", None),
    ("monitoring_metrics", "environment"): ("environments", "name", None),
    ("security_scans", "environment"): ("environments", "name", None),
    ("security_findings", "scan_id"): ("security_scans", "id", "CASCADE"),
    ("performance_metrics", "environment"): ("environments", "name", None),
    ("deployment_logs", "deployment_id"): ("deployment_configs", "id", "CASCADE"),
}

# index name -> (table, [(column, "asc"|"desc")])
SPEC_INDEXES = {
    "idx_deployment_configs_environment_status": (
        "deployment_configs",
        [("environment", "asc"), ("status", "asc")],
    ),
    "idx_deployment_configs_created_at": ("deployment_configs", [("created_at", "desc")]),
    "idx_deployment_configs_commit_sha": ("deployment_configs", [("commit_sha", "asc")]),
    "idx_deployment_configs_triggered_by": ("deployment_configs", [("triggered_by", "asc")]),
    "idx_monitoring_metrics_name_timestamp": (
        "monitoring_metrics",
        [("name", "asc"), ("timestamp", "desc")],
    ),
    "idx_monitoring_metrics_environment": (
        "monitoring_metrics",
        [("environment", "asc"), ("timestamp", "desc")],
    ),
    "idx_monitoring_metrics_source": ("monitoring_metrics", [("source", "asc")]),
    "idx_security_scans_environment_status": (
        "security_scans",
        [("environment", "asc"), ("status", "asc")],
    ),
    "idx_security_scans_started_at": ("security_scans", [("started_at", "desc")]),
    "idx_security_scans_type": ("security_scans", [("type", "asc")]),
    "idx_security_findings_scan_severity": (
        "security_findings",
        [("scan_id", "asc"), ("severity", "asc")],
    ),
    "idx_security_findings_created_at": ("security_findings", [("created_at", "desc")]),
    "idx_security_findings_resolved": (
        "security_findings",
        [("resolved", "asc"), ("severity", "asc")],
    ),
    "idx_performance_metrics_name_timestamp": (
        "performance_metrics",
        [("name", "asc"), ("timestamp", "desc")],
    ),
    "idx_performance_metrics_environment": (
        "performance_metrics",
        [("environment", "asc"), ("timestamp", "desc")],
    ),
    "idx_deployment_logs_deployment_id": ("deployment_logs", [("deployment_id", "asc")]),
    "idx_deployment_logs_timestamp": ("deployment_logs", [("timestamp", "desc")]),
    "idx_deployment_logs_level": ("deployment_logs", [("level", "asc")]),
}

SPEC_ENUM_TYPES = {
    "environment_type": ["development", "staging", "production"],
    "deployment_status": ["pending", "building", "deploying", "success", "failed", "rolled_back"],
    "alert_severity": ["low", "medium", "high", "critical"],
    "security_scan_type": ["dependency", "sast", "container", "iac"],
    "scan_status": ["pending", "running", "completed", "failed"],
    "log_level": ["debug", "info", "warn", "error"],
}
