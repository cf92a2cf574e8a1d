"""Database health: `shipboard db health`, GET /api/v1/ops/db-health and the /metrics gauges,
against real SQLite files and a real PostgreSQL."""

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

from shipboard.db import migrate
from shipboard.db.engine import create_db_engine, system_transaction
from shipboard.db.partitions import PARTITIONED_TABLES, ensure_partitions, month_start
from shipboard.environments.service import seed_environments
from shipboard.ops import dbhealth
from tests.support.databases import Database, DatabaseFactory
from tests.support.live import Clients, wait_for
from tests.support.telemetry import scrape, value


def shipboard(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipboard", *args],
        env={**os.environ, "SHIPBOARD_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _flush_stats(conn: sa.Connection) -> None:
    # Backends report their counts to the statistics views in batches; make this one's visible.
    conn.execute(sa.text("SELECT pg_stat_force_next_flush()"))


# --- SQLite -------------------------------------------------------------------------------------


def test_sqlite_health_reports_file_wal_pages_and_free_pages(databases: DatabaseFactory) -> None:
    database = databases.new("sqlite")
    migrate.upgrade(database.url)
    result = shipboard("db", "health", "--json", url=database.url)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    lite = report["sqlite"]
    assert report["backend"] == "sqlite"
    assert report["postgres"] is None
    assert lite["journal_mode"] == "wal"
    assert lite["page_size"] == 4096
    assert lite["page_count"] > 10
    assert lite["file_bytes"] == os.path.getsize(lite["path"])
    # Migrations that rebuild a table on SQLite (batch ALTER) leave a few free pages behind.
    assert lite["freelist_count"] < lite["page_count"] / 10
    assert report["warnings"] == []

    # A large table dropped leaves free pages behind: reported, and a warning (exit 1).
    engine = create_db_engine(database.url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE scratch (blob TEXT)")
        conn.exec_driver_sql(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 2000) "
            "INSERT INTO scratch SELECT hex(randomblob(1000)) FROM n"
        )
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE scratch")
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    result = shipboard("db", "health", url=database.url)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "VACUUM would return them" in result.stdout
    assert "pages of 4096 bytes" in result.stdout


def test_health_endpoint_is_for_admins_and_reports_the_server_pool(clients: Clients) -> None:
    with clients.as_role("viewer") as viewer:
        assert viewer.get("/api/v1/ops/db-health").status_code == 403
    with clients.as_role("admin") as admin:
        response = admin.get("/api/v1/ops/db-health", params={"limit": 3})
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["backend"] == clients.server.engine.dialect.name
    pool = report["pool"]
    assert pool["size"] >= 1
    assert pool["checked_out"] >= 1  # the request's own transaction


# --- PostgreSQL ---------------------------------------------------------------------------------


@pytest.fixture
def pg(databases: DatabaseFactory) -> Database:
    database = databases.new("postgres")
    migrate.upgrade(database.url)
    return database


@pytest.mark.postgres
def test_partition_coverage_counts_months_ahead_and_default_rows(pg: Database) -> None:
    engine = pg.engine()
    today = datetime.now(UTC).date()
    with engine.begin() as conn:
        ensure_partitions(conn, months_ahead=2)
    with system_transaction(engine) as session:
        seed_environments(session)
    report = dbhealth.collect(engine)
    assert report.postgres is not None
    coverage = {p.table: p for p in report.postgres.partitions}
    assert set(coverage) == set(PARTITIONED_TABLES)
    for part in coverage.values():
        assert part.months_ahead == 2
        assert part.covered_until == month_start(today, 3)
        assert part.default_rows == 0
    assert not any("partition" in w for w in report.warnings)

    # A point years ahead has no partition: it lands in the default one, which is reported.
    with engine.connect() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO monitoring_metrics (id, name, value, timestamp, environment, source) "
                "VALUES (:id, 'far', 1, :at, 'staging', 'test')"
            ),
            {"id": uuid.uuid4(), "at": datetime.now(UTC) + timedelta(days=3 * 365)},
        )
        conn.commit()
        _flush_stats(conn)

    def default_rows() -> int:
        health = dbhealth.collect(engine)
        assert health.postgres is not None
        return next(
            p for p in health.postgres.partitions if p.table == "monitoring_metrics"
        ).default_rows

    assert wait_for(default_rows, timeout=10) == 1
    report = dbhealth.collect(engine)
    assert any("monitoring_metrics: 1 rows in the default partition" in w for w in report.warnings)
    engine.dispose()


@pytest.mark.postgres
def test_slow_queries_say_how_to_enable_pg_stat_statements(pg: Database) -> None:
    engine = pg.engine()
    report = dbhealth.collect(engine)
    assert report.postgres is not None
    slow = report.postgres.slow_queries
    assert not slow.available
    assert slow.message is not None
    assert "shared_preload_libraries" in slow.message
    assert "CREATE EXTENSION pg_stat_statements" in slow.message
    with engine.begin() as conn:
        preloaded = "pg_stat_statements" in str(
            conn.scalar(sa.text("SHOW shared_preload_libraries"))
        )
        conn.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_stat_statements"))
    report = dbhealth.collect(engine)
    assert report.postgres is not None
    slow = report.postgres.slow_queries
    if preloaded:
        assert slow.available
        assert slow.items
    else:
        # Installed in the database but not loaded by the server: the view refuses to answer,
        # and the rest of the report still comes (it ran after, on the same connection).
        assert not slow.available
        assert "installed but cannot be read" in str(slow.message)
        assert report.postgres.partitions
    engine.dispose()


@pytest.mark.postgres
def test_bloat_scans_indexes_and_connections(pg: Database) -> None:
    engine = pg.engine()
    with engine.connect() as conn:
        conn.execute(sa.text("CREATE TABLE scratch (id int primary key, note text)"))
        conn.execute(sa.text("CREATE INDEX scratch_note ON scratch (note)"))
        conn.execute(
            sa.text("INSERT INTO scratch SELECT g, 'n' || g FROM generate_series(1, 5000) g")
        )
        conn.commit()
        conn.execute(sa.text("DELETE FROM scratch WHERE id <= 4000"))
        conn.commit()
        for _ in range(3):
            conn.execute(sa.text("SELECT count(*) FROM scratch WHERE note LIKE '%9'")).scalar()
        conn.commit()
        _flush_stats(conn)

    def scratch_bloat() -> Any:
        health = dbhealth.collect(engine, large_table_rows=500)
        assert health.postgres is not None
        found = next((b for b in health.postgres.bloat if b.table == "scratch"), None)
        return (found, health.postgres) if found else None

    bloat, pg_report = wait_for(scratch_bloat, timeout=10)
    assert bloat.dead_rows == 4000
    assert bloat.live_rows == 1000
    assert bloat.dead_ratio == 0.8
    scans = {s.table: s for s in pg_report.sequential_scans}
    assert scans["scratch"].seq_scans >= 3
    assert scans["scratch"].seq_rows_read >= 3000
    unused = {(i.table, i.index) for i in pg_report.unused_indexes}
    assert ("scratch", "scratch_note") in unused
    # Unique indexes enforce something: never reported as unused.
    assert not any(index.endswith("_pkey") for _, index in unused)
    connections = pg_report.connections
    assert 1 <= connections.this_database <= connections.used <= connections.max
    assert pg_report.replication.is_replica is False
    assert pg_report.replication.replicas == []
    assert pg_report.database_bytes > 1_000_000
    engine.dispose()


@pytest.mark.postgres
def test_cli_prints_the_postgres_report(pg: Database) -> None:
    engine = pg.engine()
    with engine.begin() as conn:
        ensure_partitions(conn, months_ahead=1)
    engine.dispose()
    result = shipboard("db", "health", url=pg.url)
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "PostgreSQL" in out
    assert "connections:" in out
    assert "pg_stat_statements is not installed" in out
    assert "replication: no replicas" in out
    for table in PARTITIONED_TABLES:
        assert table in out
    as_json = json.loads(shipboard("db", "health", "--json", url=pg.url).stdout)
    assert as_json["backend"] == "postgresql"
    assert {p["months_ahead"] for p in as_json["postgres"]["partitions"]} == {1}


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_metrics_carry_the_database_figures(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        samples = scrape(admin)
    assert value(samples, "shipboard_db_up") == 1
    assert value(samples, "shipboard_db_max_connections") >= 1
    assert (
        1
        <= value(samples, "shipboard_db_connections")
        <= value(samples, "shipboard_db_max_connections")
    )
    assert value(samples, "shipboard_db_size_bytes") > 0
    for table in PARTITIONED_TABLES:
        # The shared test database was migrated, not served: at least the current month.
        assert value(samples, "shipboard_db_partition_months_ahead", table=table) >= -1
        assert ("shipboard_db_partition_default_rows", frozenset({("table", table)})) in samples
    assert ("shipboard_db_dead_rows", frozenset({("table", "deployment_configs")})) in samples


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_metrics_carry_the_sqlite_figures(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        samples = scrape(admin)
    assert value(samples, "shipboard_db_page_size_bytes") == 4096
    assert value(samples, "shipboard_db_pages") > 10
    assert value(samples, "shipboard_db_size_bytes") > 0
    assert ("shipboard_db_freelist_pages", frozenset()) in samples
    assert ("shipboard_db_wal_bytes", frozenset()) in samples
