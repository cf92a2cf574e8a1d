"""Who may call what: every route of the OpenAPI document, every role, and no credentials.

The table below is the authorization model. A route added without an entry fails this test.
"""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import Clients

ROLES = ("viewer", "deployer", "service", "admin")
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
    # Prometheus scrapes with SHIPBOARD_METRICS_TOKEN (tests/test_observability.py); else admins.
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


def _routes(clients: Clients) -> list[tuple[str, str]]:
    doc = httpx.get(f"{clients.server.base_url}/openapi.json").json()
    return [
        (method.upper(), path)
        for path, operations in doc["paths"].items()
        for method in operations
        if method in ("get", "post", "put", "patch", "delete")
    ]


def test_every_route_has_an_entry(clients: Clients) -> None:
    routes = set(_routes(clients))
    missing = routes - set(MATRIX)
    stale = set(MATRIX) - routes
    assert not missing, f"routes without an authorization entry: {sorted(missing)}"
    assert not stale, f"entries for routes that no longer exist: {sorted(stale)}"


@pytest.mark.parametrize("role", [None, *ROLES])
def test_matrix(clients: Clients, role: str | None) -> None:
    failures = []
    for method, template in _routes(clients):
        path = template
        for placeholder, value in PATH_VALUES.items():
            path = path.replace(placeholder, value)
        allowed = MATRIX[(method, template)]
        body = BODIES.get((method, template))
        with clients.as_role(role) as client:
            response = client.request(method, path, json=body, params=QUERY.get((method, template)))
        if allowed == SIGNED:
            ok = response.status_code == 401
            expected = "401 (no signature)"
        elif allowed == EVERYONE or (role is not None and role in allowed):
            ok = response.status_code not in (401, 403)
            expected = "allowed"
        elif role is None:
            ok = response.status_code == 401
            expected = "401"
        else:
            ok = response.status_code == 403
            expected = "403"
        assert response.status_code < 500, f"{method} {path} as {role}: {response.text}"
        if not ok:
            failures.append(
                f"{method} {path} as {role}: {response.status_code}, expected {expected}"
            )
    assert not failures, "\n".join(failures)
