"""The bulk insert path writes exactly what the ORM would read back, on both databases."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import Engine

from shipboard.db.bulk import uuid7_strings
from shipboard.db.engine import system_transaction
from shipboard.deployments.models import DeploymentConfig, DeploymentLog
from shipboard.deployments.repository import add_logs
from shipboard.monitoring.models import MonitoringMetric
from shipboard.monitoring.repository import add_many


def test_points_and_log_lines_round_trip(engine: Engine) -> None:
    moment = datetime(2026, 11, 26, 9, 30, 15, 123456, tzinfo=UTC)
    point_ids = [uuid.uuid4(), uuid.uuid4()]
    with system_transaction(engine) as session:
        inserted = add_many(
            session,
            [
                {
                    "id": point_ids[0],
                    "name": "latency_ms",
                    "value": 12.5,
                    "timestamp": moment,
                    "environment": "staging",
                    "tags": {"route": "/ä", "quote": "it's"},
                    "source": "app",
                },
                {
                    "id": point_ids[1],
                    "name": "latency_ms",
                    "value": -0.25,
                    "timestamp": moment - timedelta(days=40),
                    "environment": "production",
                    "tags": {},
                    "source": "app",
                },
            ],
        )
        assert inserted == 2
        deployment = DeploymentConfig(
            id=uuid.uuid4(),
            environment="staging",
            version="1.0.0",
            commit_sha="abcdef1",
            status="pending",
            triggered_by="t",
        )
        session.add(deployment)
        session.flush()
        add_logs(
            session,
            [
                {
                    "id": uuid.uuid4(),
                    "deployment_id": deployment.id,
                    "level": "warn",
                    "message": "line; DROP TABLE x --",
                    "timestamp": moment,
                    "source": "build",
                    "metadata_": {"step": 1, "nested": {"ok": True}},
                },
                {
                    "id": uuid.uuid4(),
                    "deployment_id": deployment.id,
                    "level": "info",
                    "message": "no metadata",
                    "timestamp": moment + timedelta(microseconds=1),
                    "source": "build",
                    "metadata_": None,
                },
            ],
        )
    with system_transaction(engine) as session:
        points = {
            p.id: p
            for p in session.scalars(
                sa.select(MonitoringMetric).where(MonitoringMetric.id.in_(point_ids))
            )
        }
        logs = list(session.scalars(sa.select(DeploymentLog).order_by(DeploymentLog.timestamp)))
    first, second = points[point_ids[0]], points[point_ids[1]]
    assert (first.value, first.timestamp, first.tags) == (
        12.5,
        moment,
        {"route": "/ä", "quote": "it's"},
    )
    assert (second.value, second.timestamp, second.tags) == (-0.25, moment - timedelta(days=40), {})
    assert [(line.level, line.message, line.metadata_) for line in logs] == [
        ("warn", "line; DROP TABLE x --", {"step": 1, "nested": {"ok": True}}),
        ("info", "no metadata", None),
    ]
    assert logs[1].timestamp == moment + timedelta(microseconds=1)


def test_uuid7_strings_are_valid_distinct_time_ordered_uuids() -> None:
    before = time.time_ns() // 1_000_000
    ids = uuid7_strings(5_000)
    after = time.time_ns() // 1_000_000
    parsed = [uuid.UUID(i) for i in ids]
    assert [str(p) for p in parsed] == ids  # canonical form, as str(UUID) gives
    assert {p.version for p in parsed} == {7}
    assert {p.variant for p in parsed} == {uuid.RFC_4122}
    assert len(set(ids)) == len(ids)
    assert all(before <= p.int >> 80 <= after for p in parsed)  # the millisecond they were made
    # Every variant digit occurs: the two random bits left in it are really random.
    assert {i[19] for i in ids} == set("89ab")
    time.sleep(0.002)
    assert uuid7_strings(1)[0] > max(ids)  # a later batch sorts after
