"""`GET /api/v1/environments/{name}/usage` and the storage-quota alert."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.core.crypto import Keyring, generate_key
from shipboard.db.engine import system_transaction
from shipboard.deployments.models import DeploymentConfig, DeploymentLog
from shipboard.environments.models import Environment
from shipboard.monitoring.models import MonitoringMetric
from shipboard.notifications import service as notifications
from shipboard.notifications.delivery import send_due
from shipboard.notifications.schemas import ChannelCreate
from shipboard.ops.quotas import GIB, check_storage_quotas
from shipboard.ops.tasks import enforce_retention
from tests.support.databases import SYSTEM
from tests.support.live import Clients, Receiver
from tests.support.problems import assert_problem

NOW = datetime.now(UTC)


def _fill(engine: Engine, environment: str, *, metrics: int, logs: int) -> None:
    deployment = uuid.uuid4()
    with system_transaction(engine) as s:
        s.execute(
            sa.insert(MonitoringMetric),
            [
                {
                    "id": uuid.uuid4(),
                    "name": "requests_total",
                    "value": float(i),
                    "timestamp": NOW - timedelta(minutes=i),
                    "environment": environment,
                    "tags": {"route": f"/r/{i}"},
                    "source": "usage-test",
                }
                for i in range(metrics)
            ],
        )
        s.execute(
            sa.insert(DeploymentConfig),
            [
                {
                    "id": deployment,
                    "environment": environment,
                    "version": "1.0.0",
                    "commit_sha": "abcdef1",
                    "status": "success",
                    "triggered_by": "usage-test",
                    "created_at": NOW,
                }
            ],
        )
        if logs:
            s.execute(
                sa.insert(DeploymentLog),
                [
                    {
                        "id": uuid.uuid4(),
                        "deployment_id": deployment,
                        "level": "info",
                        "message": "x" * 200,
                        "timestamp": NOW,
                        "source": "usage-test",
                    }
                    for _ in range(logs)
                ],
            )


def _tables(usage: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {t["table"]: {"rows": t["rows"], "bytes": t["bytes"]} for t in usage["tables"]}


def test_usage_counts_one_environments_rows_and_estimates_their_bytes(
    clients: Clients, engine: Engine
) -> None:
    _fill(engine, "staging", metrics=300, logs=40)
    _fill(engine, "production", metrics=100, logs=0)
    with clients.as_role("viewer") as viewer:
        response = viewer.get("/api/v1/environments/staging/usage")
        assert response.status_code == 200, response.text
        staging = response.json()
        production = viewer.get("/api/v1/environments/production/usage").json()
        assert_problem(viewer.get("/api/v1/environments/nowhere/usage"), 404)
    tables = _tables(staging)
    assert tables["monitoring_metrics"]["rows"] == 300
    assert tables["deployment_logs"]["rows"] == 40
    assert tables["deployment_configs"]["rows"] == 1
    assert tables["security_scans"] == {"rows": 0, "bytes": 0}
    assert staging["rows"] == 341
    assert all(t["bytes"] > 0 for t in tables.values() if t["rows"]), staging
    assert staging["bytes"] == sum(t["bytes"] for t in tables.values())
    # One table, shared three to one: the estimate splits its size by rows.
    ratio = (
        tables["monitoring_metrics"]["bytes"] / _tables(production)["monitoring_metrics"]["bytes"]
    )
    assert 2.9 < ratio < 3.1
    assert _tables(production)["deployment_logs"] == {"rows": 0, "bytes": 0}
    assert staging["quota_bytes"] is None
    assert staging["used_pct"] is None
    expected = "pg_total_relation_size" if engine.dialect.name == "postgresql" else "dbstat"
    assert expected in staging["method"]


def _configure(engine: Engine, *, quota_gb: float | None, channels: list[str]) -> None:
    with system_transaction(engine) as s:
        environment = s.get(Environment, "staging")
        assert environment is not None
        environment.limits = {"storage_quota_gb": quota_gb} if quota_gb else {}
        environment.config = {**environment.config, "notification_channels": channels}


def test_passing_90_percent_of_the_quota_alerts_once_per_crossing(
    clients: Clients, engine: Engine, receiver: Receiver
) -> None:
    keyring = Keyring([generate_key().encode()])
    _fill(engine, "staging", metrics=200, logs=20)
    with system_transaction(engine) as s:
        notifications.create_channel(
            s,
            data=ChannelCreate(name="quota-hook", kind="webhook", config={"url": receiver.url}),
            keyring=keyring,
            audit_context=SYSTEM,
        )
    _configure(engine, quota_gb=None, channels=["quota-hook"])
    with clients.as_role("viewer") as viewer:
        used = viewer.get("/api/v1/environments/staging/usage").json()["bytes"]
    assert used > 0

    def deliver() -> list[dict[str, Any]]:
        send_due(engine, keyring)
        return [p for p in receiver.payloads() if p.get("event") == "storage.quota"]

    # Resetting to below the line first: the environment's alert state outlives tests.
    _configure(engine, quota_gb=used * 10 / GIB, channels=["quota-hook"])
    with system_transaction(engine) as s:
        check_storage_quotas(s, audit_context=SYSTEM)
    assert deliver() == []

    _configure(engine, quota_gb=used / 0.95 / GIB, channels=["quota-hook"])
    with clients.as_role("viewer") as viewer:
        usage = viewer.get("/api/v1/environments/staging/usage").json()
    assert 94 < usage["used_pct"] < 96
    # The hourly job on the elected node runs the check.
    enforce_retention(engine)
    sent = deliver()
    assert len(sent) == 1
    assert sent[0]["environment"] == "staging"
    assert sent[0]["quota_bytes"] == usage["quota_bytes"]
    # Not equal to the figure above: the job also created next months' (empty) partitions.
    assert sent[0]["used_bytes"] >= 0.9 * usage["quota_bytes"]
    assert "storage quota" in sent[0]["message"]

    with system_transaction(engine) as s:  # still over: no second alert
        assert check_storage_quotas(s, audit_context=SYSTEM) == []
    assert len(deliver()) == 1

    _configure(engine, quota_gb=used * 2 / GIB, channels=["quota-hook"])  # back under
    with system_transaction(engine) as s:
        assert check_storage_quotas(s, audit_context=SYSTEM) == []
    _configure(engine, quota_gb=used / 0.91 / GIB, channels=["quota-hook"])  # over again
    with system_transaction(engine) as s:
        assert check_storage_quotas(s, audit_context=SYSTEM) == ["staging"]
    assert len(deliver()) == 2
    _configure(engine, quota_gb=used * 10 / GIB, channels=[])
    with system_transaction(engine) as s:
        check_storage_quotas(s, audit_context=SYSTEM)
