"""A database with a row in every table, written through the API wherever the API writes it,
and the measures that compare two databases (row counts, per-table digests). Backups, restores
and copies are checked against these."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.alerting import evaluator
from shipboard.audit import service as audit
from shipboard.auth import service as auth
from shipboard.auth.schemas import UserCreate
from shipboard.db import migrate
from shipboard.db.engine import is_postgres, system_transaction
from shipboard.db.partitions import ensure_partitions, month_start
from shipboard.environments.service import seed_environments
from shipboard.jobs.models import JobSchedule
from shipboard.models import metadata
from shipboard.monitoring import forwarding
from shipboard.notifications.grouping import flush_groups
from shipboard.ops import quota_repository
from shipboard.ops.backup import checksums, contents
from shipboard.security.models import SecurityImport, SecurityScan
from tests.support.databases import SYSTEM, Database, DatabaseFactory
from tests.support.factories import (
    SECURITY_FIXTURES,
    create_channel,
    create_rule,
    push_points,
    report_deployment,
)
from tests.support.live import Clients
from tests.support.web import browser, login, set_password
from tests.support.webhooks import configure_integration, post_github, webhook_payload

NOW = datetime.now(UTC)
# Mid-month of the previous month: on PostgreSQL, a second monthly partition holds data.
LAST_MONTH = datetime.combine(month_start(NOW.date(), -1), datetime.min.time(), UTC) + timedelta(
    days=14
)


# --- populating every table -------------------------------------------------------------------


def ok_json(response: httpx.Response, status: int | None = None) -> Any:
    assert response.is_success if status is None else response.status_code == status, response.text
    return response.json() if response.content else None


def populate(clients: Clients, engine: Engine, *, receiver_url: str) -> None:
    """At least one row in every table, through the API wherever the API writes it."""
    if is_postgres(engine):
        with engine.begin() as conn:
            ensure_partitions(conn, today=LAST_MONTH.date(), months_ahead=0)
    with clients.as_role("admin") as admin:
        ok_json(
            admin.put(
                "/api/v1/environments/staging/secrets/DEPLOY_TOKEN", json={"value": "s3cr3t-value"}
            )
        )
        configure_integration(admin, "github")
        create_channel(admin, "ops-hook", receiver_url)
        create_rule(admin, "HighErrors", for_s=0, channels=["ops-hook"])
        ok_json(
            admin.post(
                "/api/v1/silences",
                json={
                    "matchers": [{"name": "alertname", "value": "Other"}],
                    "ends_at": (NOW + timedelta(days=1)).isoformat(),
                    "comment": "maintenance",
                },
            ),
            201,
        )
    # integrations, integration_deliveries/_deployments, and a deployment from 2019.
    ok_json(
        post_github(
            clients, "deployment", webhook_payload("github/deployment.created.payload.json")
        )
    )
    with clients.as_role("deployer") as deployer:
        report_deployment(deployer, "development", "1.0.0")
        second = report_deployment(deployer, "development", "1.1.0")
        # rollback_from points at a row of the same table.
        ok_json(deployer.post(f"/api/v1/deployments/{second}/rollback"), 201)
        ok_json(
            deployer.post(
                "/api/v1/security/scans",
                json={"environment": "staging", "type": "sast", "target": ".", "tool": "bandit"},
            ),
            202,
        )
        report = SECURITY_FIXTURES / "semgrep" / "dd_many_vulns.json"
        ok_json(
            deployer.post(
                "/api/v1/security/scans/import",
                files={"file": (report.name, report.read_bytes(), "application/json")},
                data={"environment": "staging"},
            ),
            201,
        )
    with clients.as_role("deployer") as deployer:
        logs = [
            {
                "level": "info",
                "message": f"line {i} ünïcode",
                "source": "ci",
                "timestamp": t,
                # Numbers jsonb rewrites (1e-07 comes back as 0.0000001).
                "metadata": {"b": 1e-07, "a": [1.0, 2], "big": 1e20, "none": None},
            }
            for i, t in enumerate((LAST_MONTH.isoformat(), NOW.isoformat()))
        ]
        ok_json(
            deployer.post(f"/api/v1/deployments/{second}/logs", json={"logs": logs}),
            201,
        )
    with clients.as_role("service") as service:
        metrics = [
            {
                "name": "latency_ms",
                "value": value,
                "timestamp": moment.isoformat(),
                "environment": "production",
                "tags": {"route": "/"},
                "source": "application",
            }
            for value, moment in (
                (0.1 + 0.2, LAST_MONTH),
                (1e20, NOW - timedelta(minutes=5)),
                # No monthly partition that old: PostgreSQL's default partition takes it.
                (7, datetime(2019, 5, 15, tzinfo=UTC)),
            )
        ]
        ok_json(
            service.post(
                "/api/v1/metrics", json={"metrics": metrics}, headers={"Idempotency-Key": "k-1"}
            ),
        )
        results = [
            {
                "name": "api.p95",
                "environment": "staging",
                "value": value,
                "unit": "ms",
                "timestamp": (moment + timedelta(minutes=i)).isoformat(),
                **({"threshold": 120} if value > 120 else {}),
            }
            for i, (value, moment) in enumerate(((100, LAST_MONTH), (101, NOW), (130, NOW)))
        ]
        ok_json(service.post("/api/v1/performance/metrics", json={"metrics": results}))
        # otlp_cumulative_state: a cumulative OTLP counter (the last point of its series).
        started = int((NOW - timedelta(minutes=5)).timestamp()) * 10**9
        point = {
            "asInt": "3",
            "startTimeUnixNano": str(started),
            "timeUnixNano": str(started + 10**9),
        }
        export = {
            "resourceMetrics": [
                {
                    "resource": {
                        "attributes": [
                            {
                                "key": "deployment.environment.name",
                                "value": {"stringValue": "staging"},
                            }
                        ]
                    },
                    "scopeMetrics": [
                        {
                            "metrics": [
                                {
                                    "name": "jobs",
                                    "sum": {
                                        "aggregationTemporality": 2,
                                        "isMonotonic": True,
                                        "dataPoints": [point],
                                    },
                                }
                            ]
                        }
                    ],
                }
            ]
        }
        ok_json(service.post("/v1/metrics", json=export))
        # external_alerts: one alert as Alertmanager's webhook (v4) delivers it.
        webhook = {
            "version": "4",
            "status": "firing",
            "receiver": "shipboard",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "DiskFull", "environment": "staging"},
                    "annotations": {"summary": "disk 95 %"},
                    "startsAt": NOW.isoformat(),
                    "endsAt": "0001-01-01T00:00:00Z",
                    "fingerprint": "populate01",
                }
            ],
        }
        ok_json(service.post("/api/v1/integrations/alertmanager", json=webhook))
    # alerts, notification_groups, notification_deliveries (sent or not, they are rows).
    push_points(engine, "errors", [50], NOW - timedelta(seconds=2))
    evaluate_alerts(engine)
    # web_sessions
    set_password(engine, "viewer-user")
    with browser(clients.server) as client:
        assert login(client, "viewer-user").status_code == 303
    with system_transaction(engine) as session:
        audit.record(session, context=SYSTEM, action="backup.test", details={"at": "populate"})
        # security_imports: the claim an import left when its process died (lease lapsed).
        scan_id = session.scalar(sa.select(SecurityScan.id).limit(1))
        session.add(
            SecurityImport(
                scope="populate:sast:semgrep:/lapsed",
                scan_id=scan_id,
                started_at=NOW - timedelta(hours=2),
                expires_at=NOW - timedelta(hours=1),
            )
        )
        # job_schedules: a scheduled task that ran once.
        session.add(JobSchedule(name="populate.example", last_run_at=NOW, next_due_at=NOW))
        # remote_write_queue: a batch waiting for a metrics store (none is configured here).
        forwarding.enqueue(
            session,
            forwarding=forwarding.Forwarding(url="http://127.0.0.1:9/api/v1/write"),
            rows=[("p-1", "queued", 1.0, NOW, "staging", {"k": "v"}, "test")],
        )
        # storage_quota_alerts: staging over its storage quota since now.
        assert quota_repository.mark_quota_crossed(session, "staging", over=True, at=NOW)


def evaluate_alerts(engine: Engine) -> None:
    with system_transaction(engine) as session:
        evaluator.evaluate_rules(session, now=NOW)
        flush_groups(session, now=NOW, alerts_for=evaluator.group_alerts(session, NOW))


def table_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return contents.count_rows(conn, [t.name for t in metadata.sorted_tables])


def assert_every_table_has_rows(engine: Engine) -> dict[str, int]:
    """Every table Shipboard knows holds a row: a table added later and not populated here
    fails this, instead of going untested through backups."""
    counts = table_counts(engine)
    empty = sorted(name for name, count in counts.items() if count == 0)
    assert not empty, f"populate() leaves these tables empty: {empty}"
    return counts


def digests(url: str) -> dict[str, checksums.TableDigest]:
    engine = sa.create_engine(
        url.replace("postgresql://", "postgresql+psycopg://"), poolclass=sa.pool.NullPool
    )
    try:
        with engine.connect() as conn:
            return contents.database_digests(conn)
    finally:
        engine.dispose()


def small_database(databases: DatabaseFactory, backend: str) -> Database:
    """A database of its own (no server has it open) with a few rows, audit events included."""
    database = databases.new(backend)
    migrate.upgrade(database.url)
    engine = database.engine()
    try:
        with system_transaction(engine) as session:
            seed_environments(session)
            auth.create_user(
                session, data=UserCreate(name="ops", role="admin"), audit_context=SYSTEM
            )
    finally:
        engine.dispose()
    return database
