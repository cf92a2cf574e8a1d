"""What only PostgreSQL does: partitions by month, and row-level security that binds."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.db.engine import bind_identity, create_db_engine, transaction
from shipboard.db.partitions import ensure_partitions, month_start, partition_name
from tests.support.databases import Database

pytestmark = [pytest.mark.postgres, pytest.mark.parametrize("backend", ["postgres"], indirect=True)]


def _partition_of(engine: Engine, table: str, row_id: uuid.UUID) -> str:
    with engine.connect() as conn:
        return str(
            conn.execute(
                sa.text(f"SELECT tableoid::regclass::text FROM {table} WHERE id = :id"),
                {"id": row_id},
            ).scalar_one()
        )


def test_rows_land_in_their_months_partition(engine: Engine) -> None:
    now = datetime.now(UTC)
    this_month = month_start(now.date())
    next_month = month_start(now.date(), 1)
    far_past = datetime(2001, 1, 15, tzinfo=UTC)
    deployment_id = _insert_deployment(engine, "alice")
    ids = {key: uuid.uuid4() for key in ("m_now", "m_next", "m_past", "p_now", "l_now")}
    with engine.begin() as conn:
        for key, ts in (
            ("m_now", now),
            ("m_next", datetime.combine(next_month, datetime.min.time(), UTC)),
            ("m_past", far_past),
        ):
            conn.execute(
                sa.text(
                    "INSERT INTO monitoring_metrics "
                    "(id, name, value, timestamp, environment, source) "
                    "VALUES (:id, 'cpu', 1, :ts, 'staging', 'application')"
                ),
                {"id": ids[key], "ts": ts},
            )
        conn.execute(
            sa.text(
                "INSERT INTO performance_metrics (id, name, environment, value, unit) "
                "VALUES (:id, 'p95', 'staging', 12.5, 'ms')"
            ),
            {"id": ids["p_now"]},
        )
        conn.execute(
            sa.text(
                "INSERT INTO deployment_logs (id, deployment_id, level, message, source) "
                "VALUES (:id, :d, 'info', 'hello', 'build')"
            ),
            {"id": ids["l_now"], "d": deployment_id},
        )
    assert _partition_of(engine, "monitoring_metrics", ids["m_now"]) == partition_name(
        "monitoring_metrics", this_month
    )
    assert _partition_of(engine, "monitoring_metrics", ids["m_next"]) == partition_name(
        "monitoring_metrics", next_month
    )
    assert (
        _partition_of(engine, "monitoring_metrics", ids["m_past"]) == "monitoring_metrics_default"
    )
    assert _partition_of(engine, "performance_metrics", ids["p_now"]) == partition_name(
        "performance_metrics", this_month
    )
    assert _partition_of(engine, "deployment_logs", ids["l_now"]) == partition_name(
        "deployment_logs", this_month
    )


def test_ensure_partitions_creates_months_ahead_once(engine: Engine) -> None:
    with engine.begin() as conn:
        created = ensure_partitions(conn, today=date(2030, 12, 5), months_ahead=2)
        again = ensure_partitions(conn, today=date(2030, 12, 5), months_ahead=2)
    assert "monitoring_metrics_2030_12" in created
    assert "deployment_logs_2031_02" in created
    assert len(created) == 9
    assert again == []


def _insert_deployment(engine: Engine, triggered_by: str) -> uuid.UUID:
    deployment_id = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO deployment_configs "
                "(id, environment, version, commit_sha, status, triggered_by) "
                "VALUES (:id, 'staging', '1.0.0', 'abcdef1', 'pending', :who)"
            ),
            {"id": deployment_id, "who": triggered_by},
        )
    return deployment_id


def _update_as(engine: Engine, deployment_id: uuid.UUID, *, role: str, user_id: str) -> int:
    with transaction(engine) as session:
        bind_identity(session, role=role, user_id=user_id)
        result = session.execute(
            sa.text("UPDATE deployment_configs SET status = 'building' WHERE id = :id"),
            {"id": deployment_id},
        )
        return int(result.rowcount)  # type: ignore[attr-defined]


def test_rls_deployer_cannot_update_someone_elses_deployment(engine: Engine) -> None:
    deployment_id = _insert_deployment(engine, "alice")
    assert _update_as(engine, deployment_id, role="deployer", user_id="bob") == 0
    with engine.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM deployment_configs WHERE id = :id"), {"id": deployment_id}
        ).scalar_one()
    assert status == "pending"


def test_rls_triggerer_and_admin_can_update(engine: Engine) -> None:
    deployment_id = _insert_deployment(engine, "alice")
    assert _update_as(engine, deployment_id, role="deployer", user_id="alice") == 1
    other = _insert_deployment(engine, "alice")
    assert _update_as(engine, other, role="admin", user_id="root") == 1


def test_rls_only_admin_manages_environments(engine: Engine) -> None:
    def set_domain(role: str) -> int:
        with transaction(engine) as session:
            bind_identity(session, role=role, user_id="someone")
            result = session.execute(
                sa.text("UPDATE environments SET domain = 'x.example' WHERE name = 'staging'")
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    assert set_domain("deployer") == 0
    assert set_domain("admin") == 1


def test_rls_binds_even_for_a_superuser_connection(engine: Engine) -> None:
    with engine.connect() as conn:
        assert conn.execute(
            sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        ).scalar()
    deployment_id = _insert_deployment(engine, "alice")
    assert _update_as(engine, deployment_id, role="viewer", user_id="mallory") == 0


def test_connections_time_out_and_keep_alive_unless_the_url_says_otherwise(db: Database) -> None:
    """A vanished server must fail requests in seconds (503), not hang them for minutes."""
    engine = create_db_engine(db.url)
    chosen = create_db_engine(f"{db.url}?connect_timeout=3")
    try:
        with engine.connect() as conn:
            info = conn.connection.dbapi_connection.info  # type: ignore[union-attr]
            assert info.get_parameters()["connect_timeout"] == "10"
            assert info.get_parameters()["keepalives_idle"] == "30"
        with chosen.connect() as conn:
            info = conn.connection.dbapi_connection.info  # type: ignore[union-attr]
            assert info.get_parameters()["connect_timeout"] == "3"
    finally:
        engine.dispose()
        chosen.dispose()
