"""Retention: rows past each environment's horizon go, in batches; PostgreSQL drops partitions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine

from shipboard.audit.models import AuditEvent
from shipboard.db.engine import system_transaction
from shipboard.db.partitions import month_start, partition_name
from shipboard.deployments.models import DeploymentConfig, DeploymentLog
from shipboard.environments.models import Environment
from shipboard.monitoring.models import MonitoringMetric, OtlpCumulativeState
from shipboard.ops import retention
from shipboard.performance.models import PerformanceMetric
from tests.support.databases import Database

NOW = datetime.now(UTC).replace(microsecond=0)


def _set_limits(engine: Engine, **limits: dict[str, Any]) -> None:
    with system_transaction(engine) as s:
        for name, values in limits.items():
            environment = s.get(Environment, name)
            assert environment is not None
            environment.limits = {**(environment.limits or {}), **values}


def _metric(environment: str, age_days: float) -> dict[str, Any]:
    return {
        "id": uuid.uuid4(),
        "name": "cpu",
        "value": 1.0,
        "timestamp": NOW - timedelta(days=age_days),
        "environment": environment,
        "tags": {},
        "source": "test",
    }


def _insert_metrics(engine: Engine, rows: list[dict[str, Any]]) -> None:
    with system_transaction(engine) as s:
        s.execute(sa.insert(MonitoringMetric), rows)


def _insert_perf(engine: Engine, environment: str, ages: list[float]) -> list[uuid.UUID]:
    rows = [
        {
            "id": uuid.uuid4(),
            "name": "latency",
            "environment": environment,
            "timestamp": NOW - timedelta(days=age),
            "value": 1.0,
            "unit": "ms",
            "tags": {},
        }
        for age in ages
    ]
    with system_transaction(engine) as s:
        s.execute(sa.insert(PerformanceMetric), rows)
    return [r["id"] for r in rows]


def _insert_logs(engine: Engine, environment: str, ages: list[float]) -> list[uuid.UUID]:
    deployment = uuid.uuid4()
    rows = [
        {
            "id": uuid.uuid4(),
            "deployment_id": deployment,
            "level": "info",
            "message": f"line {age}",
            "timestamp": NOW - timedelta(days=age),
            "source": "test",
        }
        for age in ages
    ]
    with system_transaction(engine) as s:
        s.execute(
            sa.insert(DeploymentConfig),
            [
                {
                    "id": deployment,
                    "environment": environment,
                    "version": "1.0.0",
                    "commit_sha": "abcdef1",
                    "status": "success",
                    "triggered_by": "someone",
                    "created_at": NOW - timedelta(days=max(ages) + 1),
                }
            ],
        )
        s.execute(sa.insert(DeploymentLog), rows)
    return [r["id"] for r in rows]


def _ids(engine: Engine, model: Any) -> set[uuid.UUID]:
    with system_transaction(engine) as s:
        return set(s.scalars(sa.select(model.id)))


AGES = [1, 10, 29, 31, 60, 89, 91, 200, 400]


def test_expired_rows_go_and_each_environment_keeps_its_own_horizon(engine: Engine) -> None:
    _set_limits(
        engine,
        staging={"metrics_retention_days": 30, "logs_retention_days": 30},
        development={"metrics_retention_days": 7},
    )
    metrics = {env: [_metric(env, age) for age in AGES] for env in ENVS}
    _insert_metrics(engine, [row for rows in metrics.values() for row in rows])
    perf = {env: _insert_perf(engine, env, AGES) for env in ENVS}
    logs = {env: _insert_logs(engine, env, [*AGES, 366]) for env in ENVS}
    horizons = {
        "development": {"metrics": 7, "logs": 365},
        "staging": {"metrics": 30, "logs": 30},
        "production": {"metrics": 90, "logs": 365},
    }

    def kept(ids: list[Any], ages: list[float], days: int) -> set[Any]:
        return {i for i, age in zip(ids, ages, strict=True) if age < days}

    expected_metrics = {
        r["id"] for env in ENVS for r in metrics[env] if r["timestamp"] >= _cutoff(horizons, env)
    }
    expected_perf = set().union(*(kept(perf[env], AGES, horizons[env]["metrics"]) for env in ENVS))
    expected_logs = set().union(
        *(kept(logs[env], [*AGES, 366], horizons[env]["logs"]) for env in ENVS)
    )
    everything = {
        "monitoring_metrics": len(ENVS) * len(AGES),
        "performance_metrics": len(ENVS) * len(AGES),
        "deployment_logs": len(ENVS) * (len(AGES) + 1),
    }

    preview = retention.enforce(engine, now=NOW, dry_run=True)
    assert preview.deleted == {
        "monitoring_metrics": everything["monitoring_metrics"] - len(expected_metrics),
        "performance_metrics": everything["performance_metrics"] - len(expected_perf),
        "deployment_logs": everything["deployment_logs"] - len(expected_logs),
        "otlp_cumulative_state": 0,
        "external_alerts": 0,
    }
    assert preview.horizons == horizons
    assert len(_ids(engine, MonitoringMetric)) == everything["monitoring_metrics"]

    commits: list[int] = []
    event.listen(engine, "commit", lambda _conn: commits.append(1))
    report = retention.enforce(engine, now=NOW, batch_size=3)
    assert report.deleted == preview.deleted
    assert _ids(engine, MonitoringMetric) == expected_metrics
    assert _ids(engine, PerformanceMetric) == expected_perf
    assert _ids(engine, DeploymentLog) == expected_logs
    # Batches of at most three rows, each committed on its own.
    assert len(commits) >= sum(report.deleted.values()) // 3
    with system_transaction(engine) as s:
        audited = s.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.action == "retention.run")
            .order_by(AuditEvent.occurred_at.desc())
        ).first()
    assert audited is not None
    assert audited.details is not None
    assert audited.details["deleted"] == report.deleted

    again = retention.enforce(engine, now=NOW)
    assert not again.removed_anything


def test_the_state_of_cumulative_series_silent_past_every_horizon_goes(engine: Engine) -> None:
    """One row per cumulative OTLP series would grow forever as series come and go (a pod's
    service.instance.id): a series not exported for longer than every metrics horizon goes."""
    _set_limits(engine, staging={"metrics_retention_days": 30})
    with system_transaction(engine) as s:
        for key, age in (("fresh", 1), ("within-production", 60), ("silent", 91)):
            s.add(
                OtlpCumulativeState(
                    key=key,
                    start_ns="1",
                    time_ns="2",
                    reading={"value": 1},
                    updated_at=NOW - timedelta(days=age),
                )
            )
    preview = retention.enforce(engine, now=NOW, dry_run=True)
    assert preview.deleted["otlp_cumulative_state"] == 1
    report = retention.enforce(engine, now=NOW, batch_size=1)
    assert report.deleted["otlp_cumulative_state"] == 1
    with system_transaction(engine) as s:
        left = set(s.scalars(sa.select(OtlpCumulativeState.key)))
    assert left == {"fresh", "within-production"}


def test_alerts_alertmanager_no_longer_mentions_go_past_every_horizon(engine: Engine) -> None:
    """One row per Alertmanager fingerprint would grow forever as alerts come and go. Firing
    alerts are resent every repeat_interval (hours), so one silent past every metrics horizon
    is over, resolved or not."""
    from shipboard.alerting.models import ExternalAlert

    _set_limits(engine, staging={"metrics_retention_days": 30})
    with system_transaction(engine) as s:
        for fingerprint, status, age in (
            ("fresh", "resolved", 1),
            ("within-production", "resolved", 60),
            ("resolved-long-ago", "resolved", 91),
            ("firing-but-silent", "firing", 200),
        ):
            s.add(
                ExternalAlert(
                    fingerprint=fingerprint,
                    alertname="HighLatency",
                    status=status,
                    labels={"alertname": "HighLatency"},
                    annotations={},
                    starts_at=NOW - timedelta(days=age + 1),
                    updated_at=NOW - timedelta(days=age),
                )
            )
    preview = retention.enforce(engine, now=NOW, dry_run=True)
    assert preview.deleted["external_alerts"] == 2
    report = retention.enforce(engine, now=NOW, batch_size=1)
    assert report.deleted["external_alerts"] == 2
    with system_transaction(engine) as s:
        left = set(s.scalars(sa.select(ExternalAlert.fingerprint)))
    assert left == {"fresh", "within-production"}


ENVS = ("development", "staging", "production")


def _cutoff(horizons: dict[str, dict[str, int]], env: str) -> datetime:
    return NOW - timedelta(days=horizons[env]["metrics"])


def test_a_retention_setting_is_validated_like_every_limit(engine: Engine) -> None:
    from shipboard.environments.schemas import EnvironmentLimitsPatch

    assert EnvironmentLimitsPatch(metrics_retention_days=30).metrics_retention_days == 30
    with pytest.raises(ValueError, match="greater than 0"):
        EnvironmentLimitsPatch(logs_retention_days=0)
    assert retention.retention_days({"metrics_retention_days": 12}, "metrics") == 12
    assert retention.retention_days({}, "logs") == 365
    assert retention.retention_days(None, "metrics") == 90


def test_db_retention_command_dry_run_changes_nothing(db: Database, engine: Engine) -> None:
    _insert_metrics(engine, [_metric("staging", 400), _metric("staging", 1)])
    env = {**os.environ, "SHIPBOARD_DATABASE_URL": db.url}
    done = subprocess.run(
        [sys.executable, "-m", "shipboard", "db", "retention", "--dry-run", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["dry_run"] is True
    assert report["deleted"]["monitoring_metrics"] == 1
    assert len(_ids(engine, MonitoringMetric)) == 2
    done = subprocess.run(
        [sys.executable, "-m", "shipboard", "db", "retention"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "removed 1 row(s) from monitoring_metrics" in done.stdout
    assert len(_ids(engine, MonitoringMetric)) == 1


# --- PostgreSQL: partitions ---------------------------------------------------------------------


def _exists(engine: Engine, name: str) -> bool:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT to_regclass(:n)"), {"n": name}).scalar() is not None


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_postgres_drops_a_partition_past_every_horizon_and_keeps_the_current_one(
    engine: Engine,
) -> None:
    from shipboard.db.partitions import ensure_partitions

    old_month = month_start((NOW - timedelta(days=200)).date())
    current_month = month_start(NOW.date())
    with engine.begin() as conn:
        ensure_partitions(conn, today=old_month, months_ahead=0)
    old = partition_name("monitoring_metrics", old_month)
    current = partition_name("monitoring_metrics", current_month)
    assert _exists(engine, old)
    _insert_metrics(
        engine,
        [
            _metric("production", 200),
            _metric("staging", 200),
            _metric("staging", 0),
            _metric("staging", 500),  # older than any partition: in the default one
        ],
    )
    # Production keeps metrics for 250 days: its row holds the whole partition back.
    _set_limits(engine, production={"metrics_retention_days": 250})
    report = retention.enforce(engine, now=NOW)
    assert old not in report.dropped_partitions
    assert _exists(engine, old)
    with system_transaction(engine) as s:
        left = {
            (env, (NOW - ts).days)
            for env, ts in s.execute(
                sa.select(MonitoringMetric.environment, MonitoringMetric.timestamp)
            )
        }
    assert left == {("production", 200), ("staging", 0)}

    _set_limits(engine, production={"metrics_retention_days": 90})
    preview = retention.enforce(engine, now=NOW, dry_run=True)
    assert old in preview.dropped_partitions
    assert preview.deleted["monitoring_metrics"] == 0  # its one row goes with the partition
    assert _exists(engine, old)
    report = retention.enforce(engine, now=NOW)
    assert old in report.dropped_partitions
    assert not _exists(engine, old)
    assert _exists(engine, current)
    for ahead in (1, 2):
        assert _exists(engine, partition_name("monitoring_metrics", month_start(NOW.date(), ahead)))
    with system_transaction(engine) as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(MonitoringMetric)) == 1
