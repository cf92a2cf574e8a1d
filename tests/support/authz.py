"""The authorization model: for every route of the OpenAPI document, who may call it.

``tests/auth/test_authz_matrix.py`` checks every role against it; a route added without an entry
fails there. The attacker tests reuse it to try every route without credentials.
"""

from __future__ import annotations

from shipboard.core.types import ROLES

EVERYONE = "public"
# Webhooks authenticate with the provider's signature (GitHub) or token (GitLab), not a bearer
# token: every caller without one, whatever their role, gets 401.
SIGNED = "signed"
ALL_USERS = frozenset(ROLES)
ADMIN = frozenset({"admin"})
DEPLOYERS = frozenset({"deployer", "admin"})
# Deployers create deployments; CI pipelines (service) report the ones they run themselves.
CREATORS = frozenset({"deployer", "service", "admin"})
INGEST = frozenset({"service", "admin"})

MATRIX: dict[tuple[str, str], frozenset[str] | str] = {
    ("GET", "/healthz"): EVERYONE,
    ("GET", "/readyz"): EVERYONE,
    # Prometheus scrapes with SHIPBOARD_METRICS_TOKEN (tests/core/test_observability.py); else
    # admins.
    ("GET", "/metrics"): ADMIN,
    ("GET", "/api/v1/ops/db-health"): ADMIN,
    ("GET", "/api/v1/me"): ALL_USERS,
    ("GET", "/api/v1/environments"): ALL_USERS,
    ("GET", "/api/v1/environments/{name}"): ALL_USERS,
    ("PUT", "/api/v1/environments/{name}"): ADMIN,
    ("PATCH", "/api/v1/environments/{name}"): ADMIN,
    ("PUT", "/api/v1/environments/{name}/features/{flag}"): ADMIN,
    ("GET", "/api/v1/environments/{name}/secrets"): ALL_USERS,
    ("GET", "/api/v1/environments/{name}/usage"): ALL_USERS,
    ("PUT", "/api/v1/environments/{name}/secrets/{key}"): ADMIN,
    ("DELETE", "/api/v1/environments/{name}/secrets/{key}"): ADMIN,
    ("GET", "/api/v1/audit"): ADMIN,
    ("GET", "/api/v1/config"): ADMIN,
    ("POST", "/api/v1/config/diff"): ADMIN,
    ("POST", "/api/v1/config/apply"): ADMIN,
    ("POST", "/api/v1/deployments"): CREATORS,
    ("GET", "/api/v1/deployments"): ALL_USERS,
    ("GET", "/api/v1/deployments/{deployment_id}"): ALL_USERS,
    ("POST", "/api/v1/deployments/{deployment_id}/status"): CREATORS,
    ("POST", "/api/v1/deployments/{deployment_id}/cancel"): CREATORS,
    ("POST", "/api/v1/deployments/{deployment_id}/approve"): DEPLOYERS,
    ("POST", "/api/v1/deployments/{deployment_id}/reject"): DEPLOYERS,
    ("POST", "/api/v1/deployments/{deployment_id}/rollback"): DEPLOYERS,
    ("POST", "/api/v1/environments/{name}/rollback"): DEPLOYERS,
    ("GET", "/api/v1/deployments/{deployment_id}/logs"): ALL_USERS,
    ("POST", "/api/v1/deployments/{deployment_id}/logs"): CREATORS,
    ("GET", "/api/v1/deployments/{deployment_id}/logs/stream"): ALL_USERS,
    ("POST", "/api/v1/metrics"): INGEST,
    ("GET", "/api/v1/metrics/series"): ALL_USERS,
    ("GET", "/api/v1/metrics/names"): ALL_USERS,
    ("POST", "/v1/metrics"): INGEST,
    ("GET", "/api/v1/alert-rules"): ALL_USERS,
    ("POST", "/api/v1/alert-rules"): ADMIN,
    ("GET", "/api/v1/alert-rules/{rule_id}"): ALL_USERS,
    ("DELETE", "/api/v1/alert-rules/{rule_id}"): ADMIN,
    ("PATCH", "/api/v1/alert-rules/{rule_id}"): ADMIN,
    ("GET", "/api/v1/alerts"): ALL_USERS,
    ("GET", "/api/v1/alerts/{alert_id}"): ALL_USERS,
    ("GET", "/api/v1/silences"): ALL_USERS,
    ("POST", "/api/v1/silences"): DEPLOYERS,
    ("DELETE", "/api/v1/silences/{silence_id}"): DEPLOYERS,
    ("GET", "/api/v1/external-alerts"): ALL_USERS,
    ("POST", "/api/v1/integrations/alertmanager"): INGEST,
    ("GET", "/api/v1/notification-channels"): ALL_USERS,
    ("POST", "/api/v1/notification-channels"): ADMIN,
    ("DELETE", "/api/v1/notification-channels/{channel_id}"): ADMIN,
    ("GET", "/api/v1/notification-channels/{channel_id}/deliveries"): ADMIN,
    ("POST", "/api/v1/notification-channels/{channel_id}/test"): ADMIN,
    ("GET", "/api/v1/reports/monitoring"): ALL_USERS,
    ("GET", "/api/v1/reports/security"): ALL_USERS,
    ("GET", "/api/v1/reports/dora"): ALL_USERS,
    ("GET", "/api/v1/reports/performance"): ALL_USERS,
    ("POST", "/api/v1/performance/metrics"): CREATORS,
    ("GET", "/api/v1/performance/metrics"): ALL_USERS,
    ("POST", "/api/v1/performance/import"): CREATORS,
    ("GET", "/api/v1/performance/regressions"): ALL_USERS,
    ("POST", "/api/v1/security/scans/import"): CREATORS,
    ("POST", "/api/v1/security/scans"): CREATORS,
    ("GET", "/api/v1/security/scans"): ALL_USERS,
    ("GET", "/api/v1/security/scans/{scan_id}"): ALL_USERS,
    ("GET", "/api/v1/security/scans/{scan_id}/findings"): ALL_USERS,
    ("GET", "/api/v1/security/findings"): ALL_USERS,
    ("PATCH", "/api/v1/security/findings/{finding_id}"): DEPLOYERS,
    ("POST", "/api/v1/integrations/github"): SIGNED,
    ("POST", "/api/v1/integrations/gitlab"): SIGNED,
    ("GET", "/api/v1/integrations"): ADMIN,
    ("GET", "/api/v1/integrations/{kind}"): ADMIN,
    ("PUT", "/api/v1/integrations/{kind}"): ADMIN,
    ("DELETE", "/api/v1/integrations/{kind}"): ADMIN,
    ("GET", "/api/v1/integrations/{kind}/deliveries"): ADMIN,
}

# A deployment id that does not exist: allowed callers get 404 (not 401/403), which is the point.
PATH_VALUES = {
    "{name}": "staging",
    "{flag}": "matrix_flag",
    "{key}": "MATRIX_KEY",
    "{deployment_id}": "00000000-0000-4000-8000-000000000000",
    "{rule_id}": "00000000-0000-4000-8000-000000000000",
    "{alert_id}": "00000000-0000-4000-8000-000000000000",
    "{silence_id}": "00000000-0000-4000-8000-000000000000",
    "{channel_id}": "00000000-0000-4000-8000-000000000000",
    "{scan_id}": "00000000-0000-4000-8000-000000000000",
    "{finding_id}": "00000000-0000-4000-8000-000000000000",
    "{kind}": "gitlab",
}

BODIES = {
    ("PATCH", "/api/v1/environments/{name}"): {"features": {"matrix": True}},
    ("PUT", "/api/v1/environments/{name}/features/{flag}"): {"enabled": True},
    ("PUT", "/api/v1/environments/{name}/secrets/{key}"): {"value": "matrix-value"},
    ("PUT", "/api/v1/environments/{name}"): {"domain": "staging.example", "config": {}},
    ("POST", "/api/v1/deployments"): {
        "environment": "development",
        "version": "1.0.0",
        "commit_sha": "abcdef1",
    },
    ("POST", "/api/v1/deployments/{deployment_id}/status"): {"status": "building"},
    ("POST", "/api/v1/deployments/{deployment_id}/logs"): {
        "logs": [{"level": "info", "message": "m", "source": "s"}]
    },
    ("POST", "/api/v1/metrics"): {
        "metrics": [{"name": "m", "value": 1, "environment": "staging", "source": "test"}]
    },
    ("POST", "/v1/metrics"): {"resourceMetrics": []},
    ("POST", "/api/v1/integrations/alertmanager"): {
        "version": "4",
        "status": "firing",
        "alerts": [],
    },
    ("PATCH", "/api/v1/security/findings/{finding_id}"): {"status": "fixed", "reason": "r"},
    ("PATCH", "/api/v1/alert-rules/{rule_id}"): {"enabled": False},
    ("POST", "/api/v1/security/scans"): {"type": "sast", "environment": "staging", "target": "/x"},
    ("PUT", "/api/v1/integrations/{kind}"): {"secret": "matrix-secret"},
    ("POST", "/api/v1/integrations/github"): {"zen": "unsigned"},
    ("POST", "/api/v1/integrations/gitlab"): {"object_kind": "deployment"},
    ("POST", "/api/v1/performance/metrics"): {
        "metrics": [{"name": "b", "value": 1, "unit": "ms", "environment": "staging"}]
    },
}
QUERY = {
    ("GET", "/api/v1/metrics/series"): {"name": "m"},
    ("GET", "/api/v1/reports/monitoring"): {"environment": "staging"},
    ("GET", "/api/v1/reports/security"): {"environment": "staging"},
    ("GET", "/api/v1/reports/performance"): {"environment": "staging"},
}
