"""Builders for what tests make over and over (users are in ``users.py``): pipelines, deployments,
metric points, alert rules and channels, imported security reports. Each goes through the API
(or the service, where a test needs a fake clock) as a user would, and asserts it worked, so a
test reads as its scenario.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.alerting import evaluator
from shipboard.db.engine import system_transaction, transaction
from shipboard.monitoring.schemas import MonitoringMetricCreate
from shipboard.monitoring.service import ingest_metrics
from shipboard.notifications.delivery import send_due
from shipboard.notifications.grouping import flush_groups
from tests.support.live import wait_for
from tests.support.paths import FIXTURES

# --- environments ------------------------------------------------------------------------------

FULL_CONFIG = {
    "database_url": "postgresql://app:pw@db.internal:5432/app",
    "supabase_url": "https://abc.supabase.co",
    "supabase_anon_key": "anon",
    "clerk_publishable_key": "pk_clerk",
    "stripe_publishable_key": "pk_stripe",
    "resend_api_key": "re_123",
    "api_rate_limit": 600,
    "max_file_size_mb": 25,
    "pipeline": {"steps": [{"name": "build", "stage": "build", "run": "make"}]},
}


def pipeline_steps(*specs: tuple[str, str, str], **extra: Any) -> dict[str, Any]:
    """A pipeline of ``(name, stage, run)`` steps, each with ``extra`` fields."""
    return {"steps": [{"name": n, "stage": s, "run": r, **extra} for n, s, r in specs]}


def set_pipeline(
    client: httpx.Client, env: str, pipeline: dict[str, Any], **features: bool
) -> None:
    """Give ``env`` this pipeline (and feature flags) through the API."""
    patch: dict[str, Any] = {"config": {"pipeline": pipeline}}
    if features:
        patch["features"] = features
    response = client.patch(f"/api/v1/environments/{env}", json=patch)
    assert response.status_code == 200, response.text


# --- deployments -------------------------------------------------------------------------------

TERMINAL = ("success", "failed", "rolled_back")


def start_deployment(
    client: httpx.Client, env: str = "staging", version: str = "1.0.0", **extra: Any
) -> str:
    """Create a managed deployment; returns its id."""
    response = client.post(
        "/api/v1/deployments",
        json={"environment": env, "version": version, "commit_sha": "abcdef1", **extra},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def report_deployment(
    client: httpx.Client,
    env: str = "staging",
    version: str = "1.0.0",
    *,
    outcome: str = "success",
) -> str:
    """A deployment reported by its runner (as CI reports it) through building and deploying to
    ``outcome``; returns its id."""
    did = start_deployment(client, env, version)
    for status in ("building", "deploying", outcome):
        response = client.post(f"/api/v1/deployments/{did}/status", json={"status": status})
        assert response.status_code == 200, response.text
    return did


def wait_final(client: httpx.Client, did: str, timeout: float = 30) -> dict[str, Any]:
    """The deployment's detail once its status is terminal."""

    def done() -> dict[str, Any] | None:
        detail = client.get(f"/api/v1/deployments/{did}").json()
        return detail if detail["status"] in TERMINAL else None

    return dict(wait_for(done, timeout=timeout))


def deployment_logs(client: httpx.Client, did: str) -> list[dict[str, Any]]:
    return list(
        client.get(f"/api/v1/deployments/{did}/logs", params={"limit": 500}).json()["items"]
    )


# --- monitoring and alerting -------------------------------------------------------------------


def push_points(
    engine: Engine, name: str, values: list[float], at: datetime, environment: str = "production"
) -> None:
    """Store metric points ``values`` of ``name``, a millisecond apart from ``at``."""
    with transaction(engine) as session:
        ingest_metrics(
            session,
            metrics=[
                MonitoringMetricCreate(
                    name=name,
                    value=v,
                    timestamp=at + timedelta(milliseconds=i),
                    environment=environment,
                    source="application",
                )
                for i, v in enumerate(values)
            ],
        )


def create_rule(client: httpx.Client, name: str, **overrides: Any) -> dict[str, Any]:
    """A threshold rule on ``errors`` in production (avg over 60 s > 10, for 30 s)."""
    body = {
        "name": name,
        "kind": "threshold",
        "environment": "production",
        "metric": "errors",
        "agg": "avg",
        "window_s": 60,
        "op": ">",
        "value": 10,
        "for_s": 30,
        "keep_firing_for_s": 30,
        "severity": "high",
        "annotations": {"summary": f"{name} is high"},
        **overrides,
    }
    response = client.post("/api/v1/alert-rules", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def create_channel(client: httpx.Client, name: str, url: str, **overrides: Any) -> dict[str, Any]:
    """A webhook channel to ``url``, grouped by environment, sending at once."""
    body = {
        "name": name,
        "kind": "webhook",
        "config": {"url": url, "secret": "s3cret"},
        "group_by": ["environment"],
        "group_wait_s": 0,
        "group_interval_s": 0,
        **overrides,
    }
    response = client.post("/api/v1/notification-channels", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def tick_alerts(engine: Engine, keyring: Any, now: datetime) -> None:
    """One round of the scheduler at ``now``: evaluate rules, flush groups, send what is due."""
    with system_transaction(engine) as session:
        evaluator.evaluate_rules(session, now=now)
        flush_groups(session, now=now, alerts_for=evaluator.group_alerts(session, now))
    send_due(engine, keyring, now=now)


# --- security ----------------------------------------------------------------------------------

SECURITY_FIXTURES = FIXTURES / "security"


def import_report(
    client: httpx.Client, relative: str, environment: str = "staging", **form: str
) -> httpx.Response:
    """Upload ``tests/fixtures/security/<relative>`` to the import endpoint."""
    content = (SECURITY_FIXTURES / relative).read_bytes()
    return client.post(
        "/api/v1/security/scans/import",
        files={"file": (Path(relative).name, content, "application/json")},
        data={"environment": environment, **form},
    )


def created(response: httpx.Response) -> dict[str, Any]:
    """The body of a 201."""
    assert response.status_code == 201, response.text
    return dict(response.json())


def current_findings(client: httpx.Client, **params: str) -> list[dict[str, Any]]:
    """Staging's findings list (``params`` filter it)."""
    return list(
        client.get("/api/v1/security/findings", params={"environment": "staging", **params}).json()[
            "items"
        ]
    )


def age_finding_identities(engine: Engine, days: int) -> None:
    """Make every finding first seen ``days`` ago (for SLA tests)."""
    long_ago = datetime.now(UTC) - timedelta(days=days)
    with engine.begin() as conn:
        value = (
            long_ago.isoformat(timespec="microseconds")
            if engine.dialect.name == "sqlite"
            else long_ago
        )
        conn.execute(sa.text("UPDATE finding_identities SET first_seen_at = :t"), {"t": value})
