"""Create, get and list for each entity, with keyset pages and filters, on both backends."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.auth.schemas import Principal
from shipboard.core.errors import InvalidInput, NotFound
from shipboard.db.engine import transaction
from shipboard.deployments import service as deployments
from shipboard.deployments.schemas import (
    DeploymentCreate,
    DeploymentFilter,
    DeploymentLogCreate,
    LogFilter,
)
from shipboard.environments import service as environments
from shipboard.monitoring import service as monitoring
from shipboard.monitoring.schemas import MonitoringMetricCreate, MonitoringMetricFilter
from shipboard.performance import service as performance
from shipboard.performance.schemas import PerformanceMetricCreate, PerformanceMetricFilter
from shipboard.security import service as security
from shipboard.security.schemas import (
    SecurityFindingCreate,
    SecurityFindingFilter,
    SecurityScanCreate,
    SecurityScanFilter,
)
from tests.support.databases import SYSTEM

BUILD = LogFilter(source="build")


def _as(name: str) -> Principal:
    return Principal(user_id=uuid.uuid4(), name=name, role="deployer")


def test_seed_is_idempotent_and_uses_spec_domains(engine: Engine) -> None:
    with transaction(engine) as s:
        assert environments.seed_environments(s) == []  # the fixture seeded already
        envs = environments.list_environments(s, reveal_credentials=True)
    assert [(e.name, e.domain) for e in envs] == [
        ("development", "dev.legacyguard.app"),
        ("staging", "staging.legacyguard.app"),
        ("production", "legacyguard.cz"),
    ]


def test_unknown_environment_is_not_found(engine: Engine) -> None:
    with transaction(engine) as s, pytest.raises(NotFound):
        environments.get_environment(s, name="qa", reveal_credentials=False)


def test_deployments_page_newest_first_without_gaps_or_repeats(engine: Engine) -> None:
    created = []
    with transaction(engine) as s:
        for i in range(7):
            d = deployments.create_deployment(
                s,
                data=DeploymentCreate(
                    environment="staging", version=f"1.0.{i}", commit_sha=f"{i:07x}"
                ),
                caller=_as("alice" if i % 2 else "bob"),
                audit_context=SYSTEM,
            )
            created.append(d.id)
    seen: list[uuid.UUID] = []
    cursor = None
    while True:
        with transaction(engine, write=False) as s:
            page = deployments.list_deployments(
                s, filters=DeploymentFilter(), cursor=cursor, limit=3
            )
        seen.extend(d.id for d in page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == list(reversed(created))


def test_deployment_filters(engine: Engine) -> None:
    with transaction(engine) as s:
        a = deployments.create_deployment(
            s,
            data=DeploymentCreate(environment="staging", version="1", commit_sha="aaaaaaa"),
            caller=_as("alice"),
            audit_context=SYSTEM,
        )
        deployments.create_deployment(
            s,
            data=DeploymentCreate(environment="development", version="1", commit_sha="bbbbbbb"),
            caller=_as("bob"),
            audit_context=SYSTEM,
        )
    with transaction(engine, write=False) as s:
        by_env = deployments.list_deployments(s, filters=DeploymentFilter(environment="staging"))
        by_user = deployments.list_deployments(s, filters=DeploymentFilter(triggered_by="alice"))
        by_sha = deployments.list_deployments(s, filters=DeploymentFilter(commit_sha="AAAAAAA"))
        by_status = deployments.list_deployments(s, filters=DeploymentFilter(status="success"))
        future = deployments.list_deployments(
            s, filters=DeploymentFilter(since=datetime.now(UTC) + timedelta(hours=1))
        )
        got = deployments.get_deployment(s, deployment_id=a.id)
    assert [d.id for d in by_env.items] == [a.id]
    assert [d.id for d in by_user.items] == [a.id]
    assert [d.id for d in by_sha.items] == [a.id]
    assert by_status.items == []
    assert future.items == []
    assert got.status == "pending"
    assert got.triggered_by == "alice"


def test_deployment_in_unknown_environment_changes_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM environments WHERE name = 'development'"))
    with pytest.raises(NotFound), transaction(engine) as s:
        deployments.create_deployment(
            s,
            data=DeploymentCreate(environment="development", version="1", commit_sha="aaaaaaa"),
            caller=_as("x"),
            audit_context=SYSTEM,
        )
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM deployment_configs")).scalar() == 0


def test_logs_append_in_order_and_page_oldest_first(engine: Engine) -> None:
    with transaction(engine) as s:
        d = deployments.create_deployment(
            s,
            data=DeploymentCreate(environment="staging", version="1", commit_sha="abcdef0"),
            caller=_as("x"),
            audit_context=SYSTEM,
        )
        base = datetime.now(UTC)
        count = deployments.add_logs(
            s,
            deployment_id=d.id,
            logs=[
                DeploymentLogCreate(
                    level="info",
                    message=f"line {i}",
                    source="build",
                    timestamp=base + timedelta(milliseconds=i),
                    metadata={"i": i},
                )
                for i in range(5)
            ],
        )
    assert count == 5
    with transaction(engine, write=False) as s:
        first = deployments.list_logs(s, deployment_id=d.id, filters=BUILD, limit=3)
        rest = deployments.list_logs(
            s, deployment_id=d.id, filters=BUILD, cursor=first.next_cursor, limit=3
        )
    assert [log.message for log in first.items + rest.items] == [f"line {i}" for i in range(5)]
    assert rest.next_cursor is None
    assert first.items[2].metadata == {"i": 2}


def test_logs_for_missing_deployment_is_not_found(engine: Engine) -> None:
    with pytest.raises(NotFound), transaction(engine) as s:
        deployments.add_logs(
            s,
            deployment_id=uuid.uuid4(),
            logs=[DeploymentLogCreate(level="info", message="x", source="build")],
        )


def test_metrics_batch_is_all_or_nothing(engine: Engine) -> None:
    good = MonitoringMetricCreate(
        name="cpu", value=0.5, environment="staging", source="infrastructure"
    )
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM environments WHERE name = 'development'"))
    bad = MonitoringMetricCreate(
        name="cpu", value=0.7, environment="development", source="infrastructure"
    )
    with pytest.raises(InvalidInput) as info, transaction(engine) as s:
        monitoring.ingest_metrics(s, metrics=[good, bad])
    assert info.value.errors == [
        {"loc": ["body", "metrics", 1, "environment"], "msg": "unknown environment 'development'"}
    ]
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM monitoring_metrics")).scalar() == 0


def test_metrics_round_trip_and_filters(engine: Engine) -> None:
    t0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
    with transaction(engine) as s:
        n = monitoring.ingest_metrics(
            s,
            metrics=[
                MonitoringMetricCreate(
                    name="latency_ms",
                    value=float(i),
                    timestamp=t0 + timedelta(minutes=i),
                    environment="production",
                    tags={"route": "/"},
                    source="application",
                )
                for i in range(4)
            ]
            + [
                MonitoringMetricCreate(
                    name="cpu", value=0.1, environment="staging", source="infrastructure"
                )
            ],
        )
    assert n == 5
    with transaction(engine, write=False) as s:
        page = monitoring.list_metrics(
            s,
            filters=MonitoringMetricFilter(name="latency_ms", since=t0 + timedelta(minutes=1)),
            limit=2,
        )
        more = monitoring.list_metrics(
            s,
            filters=MonitoringMetricFilter(name="latency_ms", since=t0 + timedelta(minutes=1)),
            cursor=page.next_cursor,
            limit=2,
        )
        by_source = monitoring.list_metrics(
            s, filters=MonitoringMetricFilter(source="infrastructure")
        )
    assert [m.value for m in page.items + more.items] == [3.0, 2.0, 1.0]
    assert page.items[0].tags == {"route": "/"}
    assert page.items[0].timestamp == t0 + timedelta(minutes=3)
    assert [m.name for m in by_source.items] == ["cpu"]


def test_performance_results_round_trip(engine: Engine) -> None:
    with transaction(engine) as s:
        performance.record_results(
            s,
            metrics=[
                PerformanceMetricCreate(
                    name="p95",
                    environment="staging",
                    value=120.5,
                    unit="ms",
                    tags={"endpoint": "/api"},
                    benchmark=100,
                    threshold=150,
                )
            ],
        )
    with transaction(engine, write=False) as s:
        page = performance.list_results(s, filters=PerformanceMetricFilter(environment="staging"))
    (result,) = page.items
    assert (result.value, result.unit, result.benchmark, result.threshold) == (
        120.5,
        "ms",
        100.0,
        150.0,
    )


def test_scans_and_findings(engine: Engine) -> None:
    with transaction(engine) as s:
        scan = security.create_scan(
            s, data=SecurityScanCreate(type="sast", environment="staging", status="running")
        )
        high = security.create_finding(
            s,
            data=SecurityFindingCreate(
                scan_id=scan.id,
                severity="high",
                title="SQLi",
                description="d",
                cwe_id="CWE-89",
                location="app.py:10",
            ),
        )
        security.create_finding(
            s,
            data=SecurityFindingCreate(
                scan_id=scan.id, severity="low", title="x", description="d", resolved=True
            ),
        )
    with transaction(engine, write=False) as s:
        assert security.get_scan(s, scan_id=scan.id).status == "running"
        assert security.get_finding(s, finding_id=high.id).cwe_id == "CWE-89"
        highs = security.list_findings(s, filters=SecurityFindingFilter(severity="high"))
        open_ = security.list_findings(s, filters=SecurityFindingFilter(resolved=False))
        resolved = security.list_findings(s, filters=SecurityFindingFilter(resolved=True))
        scans = security.list_scans(
            s, filters=SecurityScanFilter(type="sast", environment="staging")
        )
    assert [f.id for f in highs.items] == [high.id]
    assert [f.id for f in open_.items] == [high.id]
    assert resolved.items[0].resolved_at is not None
    assert [x.id for x in scans.items] == [scan.id]


def test_finding_for_missing_scan_is_refused(engine: Engine) -> None:
    with pytest.raises(InvalidInput), transaction(engine) as s:
        security.create_finding(
            s,
            data=SecurityFindingCreate(
                scan_id=uuid.uuid4(), severity="low", title="t", description="d"
            ),
        )


def test_malformed_cursor_is_invalid_input(engine: Engine) -> None:
    with pytest.raises(InvalidInput), transaction(engine, write=False) as s:
        deployments.list_deployments(s, filters=DeploymentFilter(), cursor="!!not-a-cursor")


def test_deleting_a_scan_cascades_to_its_findings(engine: Engine) -> None:
    with transaction(engine) as s:
        scan = security.create_scan(s, data=SecurityScanCreate(type="iac", environment="staging"))
        security.create_finding(
            s,
            data=SecurityFindingCreate(scan_id=scan.id, severity="low", title="t", description="d"),
        )
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM security_scans"))
        assert conn.execute(sa.text("SELECT count(*) FROM security_findings")).scalar() == 0


def test_check_constraint_refuses_a_status_outside_the_spec(engine: Engine) -> None:
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO deployment_configs "
                "(id, environment, version, commit_sha, status, triggered_by) "
                "VALUES (:id, 'staging', '1', 'abcdef1', 'exploded', 'x')"
            ),
            {"id": str(uuid.uuid4())},
        )


def test_a_create_that_asked_the_store_nothing_is_blocked_by_promotion_checks(
    engine: Engine,
) -> None:
    """Fail closed: a caller of the service that did not ask the metrics store (anything but
    the API route, which asks before its transaction) cannot slip past a promotion check."""
    from shipboard.core.errors import GateBlocked
    from shipboard.environments.models import Environment

    with transaction(engine) as s:
        env = s.get(Environment, "development")
        assert env is not None
        check = {"name": "errors", "query": "sum(rate(errors_total[5m]))", "op": "<", "value": 1}
        env.config = {**(env.config or {}), "promotion_checks": [check]}
    data = DeploymentCreate(environment="development", version="1.0.0", commit_sha="abcdef1")
    with transaction(engine) as s, pytest.raises(GateBlocked) as blocked:
        deployments.create_deployment(s, data=data, caller=_as("ci"), audit_context=SYSTEM)
    assert "promotion_check:errors" in str(blocked.value)
