"""Database health (the spec's Monitoring Strategy): what an operator looks at before it hurts.

Every query reads PostgreSQL's statistics views or SQLite's pragmas; none scans a data table,
so a health check is safe to run on a busy instance. The statistics views count since their last
reset (``stats_since``): an index unused for a day after a reset proves little.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from shipboard.db.partitions import PARTITIONED_TABLES, month_start
from shipboard.ops.schemas import (
    Connections,
    DbHealth,
    PartitionCoverage,
    PoolUsage,
    PostgresHealth,
    Replica,
    Replication,
    SequentialScans,
    SlowQueries,
    SlowQuery,
    SqliteHealth,
    TableBloat,
    UnusedIndex,
)

ENABLE_STATEMENTS = (
    "add pg_stat_statements to shared_preload_libraries in postgresql.conf, restart PostgreSQL, "
    "then run CREATE EXTENSION pg_stat_statements; in this database"
)
# Thresholds for the warnings; the figures themselves are always reported.
CONNECTIONS_WARN_RATIO = 0.8
BLOAT_WARN_RATIO = 0.2
BLOAT_WARN_ROWS = 10_000
REPLICATION_WARN_S = 30.0
FREELIST_WARN_RATIO = 0.25
WAL_WARN_BYTES = 256 * 1024 * 1024
_BOUND = re.compile(r"FROM \('(\d{4}-\d{2}-\d{2})[^']*'\) TO \('(\d{4}-\d{2}-\d{2})")


def collect(
    engine: Engine,
    *,
    limit: int = 10,
    large_table_rows: int = 10_000,
    today: date | None = None,
) -> DbHealth:
    """The health report of the database ``engine`` points at."""
    now = datetime.now(UTC)
    pool = pool_usage(engine)
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            pg = postgres_health(
                conn, limit=limit, large_table_rows=large_table_rows, today=today or now.date()
            )
        report = DbHealth(backend="postgresql", checked_at=now, pool=pool, postgres=pg)
    else:
        with engine.connect() as conn:
            lite = sqlite_health(conn, engine.url.database or "")
        report = DbHealth(backend="sqlite", checked_at=now, pool=pool, sqlite=lite)
    report.warnings = warnings(report)
    return report


def pool_usage(engine: Engine) -> PoolUsage | None:
    """Connections of this process's pool (None for pools that keep none, e.g. NullPool)."""
    pool = engine.pool
    if not isinstance(pool, sa.pool.QueuePool):
        return None
    return PoolUsage(
        size=pool.size(),
        checked_out=pool.checkedout(),
        # Negative until the pool has opened all its connections: nothing is overflowing then.
        overflow=max(0, pool.overflow()),
        max_overflow=max(0, int(getattr(pool, "_max_overflow", 0))),
    )


# --- PostgreSQL ---------------------------------------------------------------------------------


def postgres_health(
    conn: sa.Connection, *, limit: int, large_table_rows: int, today: date
) -> PostgresHealth:
    return PostgresHealth(
        version=str(conn.scalar(sa.text("SHOW server_version"))),
        database_bytes=database_bytes(conn),
        stats_since=conn.scalar(
            sa.text("SELECT stats_reset FROM pg_stat_database WHERE datname = current_database()")
        ),
        slow_queries=slow_queries(conn, limit=limit),
        unused_indexes=unused_indexes(conn, limit=limit),
        sequential_scans=sequential_scans(conn, limit=limit, min_rows=large_table_rows),
        bloat=bloat(conn, limit=limit),
        connections=connections(conn),
        replication=replication(conn),
        partitions=partition_coverage(conn, today=today),
    )


def database_bytes(conn: sa.Connection) -> int:
    return int(conn.scalar(sa.text("SELECT pg_database_size(current_database())")) or 0)


def slow_queries(conn: sa.Connection, *, limit: int) -> SlowQueries:
    """The statements with the highest mean time, from pg_stat_statements when it is there."""
    installed = conn.scalar(
        sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'")
    )
    if not installed:
        return SlowQueries(
            available=False, message=f"pg_stat_statements is not installed: {ENABLE_STATEMENTS}"
        )
    try:
        # A savepoint: without the library preloaded, reading the view fails, and the rest of
        # the report still has to run on this connection.
        with conn.begin_nested():
            rows = conn.execute(
                sa.text(
                    "SELECT query, calls, mean_exec_time, total_exec_time, rows "
                    "FROM pg_stat_statements "
                    "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
                    "ORDER BY mean_exec_time DESC LIMIT :limit"
                ),
                {"limit": limit},
            ).all()
    except DBAPIError as exc:
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        return SlowQueries(
            available=False,
            message=f"pg_stat_statements is installed but cannot be read ({reason}): "
            + ENABLE_STATEMENTS,
        )
    return SlowQueries(
        available=True,
        items=[
            SlowQuery(
                query=" ".join(str(r[0]).split())[:500],
                calls=int(r[1]),
                mean_ms=round(float(r[2]), 3),
                total_ms=round(float(r[3]), 3),
                rows=int(r[4]),
            )
            for r in rows
        ],
    )


def unused_indexes(conn: sa.Connection, *, limit: int) -> list[UnusedIndex]:
    """Indexes never scanned since the statistics were reset; unique ones enforce something and
    are left out."""
    rows = conn.execute(
        sa.text(
            "SELECT s.relname, s.indexrelname, pg_relation_size(s.indexrelid) "
            "FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid "
            "WHERE s.idx_scan = 0 AND NOT i.indisunique AND NOT i.indisprimary "
            "ORDER BY 3 DESC, 1, 2 LIMIT :limit"
        ),
        {"limit": limit},
    ).all()
    return [UnusedIndex(table=r[0], index=r[1], size_bytes=int(r[2])) for r in rows]


def sequential_scans(conn: sa.Connection, *, limit: int, min_rows: int) -> list[SequentialScans]:
    """Large tables read by sequential scans, most rows read first: where an index looks
    missing."""
    rows = conn.execute(
        sa.text(
            "SELECT relname, n_live_tup, seq_scan, seq_tup_read, coalesce(idx_scan, 0) "
            "FROM pg_stat_user_tables WHERE seq_scan > 0 AND n_live_tup >= :min_rows "
            "ORDER BY seq_tup_read DESC, relname LIMIT :limit"
        ),
        {"limit": limit, "min_rows": min_rows},
    ).all()
    return [
        SequentialScans(
            table=r[0],
            live_rows=int(r[1]),
            seq_scans=int(r[2]),
            seq_rows_read=int(r[3]),
            index_scans=int(r[4]),
        )
        for r in rows
    ]


def bloat(conn: sa.Connection, *, limit: int) -> list[TableBloat]:
    """Dead tuples per table (what VACUUM has not reclaimed yet), most first."""
    rows = conn.execute(
        sa.text(
            "SELECT relname, n_live_tup, n_dead_tup, last_autovacuum FROM pg_stat_user_tables "
            "WHERE n_dead_tup > 0 ORDER BY n_dead_tup DESC, relname LIMIT :limit"
        ),
        {"limit": limit},
    ).all()
    return [
        TableBloat(
            table=r[0],
            live_rows=int(r[1]),
            dead_rows=int(r[2]),
            dead_ratio=round(int(r[2]) / max(1, int(r[1]) + int(r[2])), 4),
            last_autovacuum=r[3],
        )
        for r in rows
    ]


def connections(conn: sa.Connection) -> Connections:
    used, here, maximum, reserved = conn.execute(
        sa.text(
            "SELECT count(*) FILTER (WHERE backend_type = 'client backend'), "
            "count(*) FILTER (WHERE backend_type = 'client backend' "
            "AND datname = current_database()), "
            "current_setting('max_connections')::int, "
            "current_setting('superuser_reserved_connections')::int "
            "FROM pg_stat_activity"
        )
    ).one()
    states = conn.execute(
        sa.text(
            "SELECT coalesce(state, 'unknown'), count(*) FROM pg_stat_activity "
            "WHERE backend_type = 'client backend' AND datname = current_database() GROUP BY 1"
        )
    ).all()
    return Connections(
        used=int(used),
        max=int(maximum),
        reserved=int(reserved),
        this_database=int(here),
        by_state={str(s): int(n) for s, n in states},
    )


def replication(conn: sa.Connection) -> Replication:
    if conn.scalar(sa.text("SELECT pg_is_in_recovery()")):
        delay = conn.scalar(
            sa.text("SELECT EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())")
        )
        return Replication(is_replica=True, replay_delay_s=None if delay is None else float(delay))
    rows = conn.execute(
        sa.text(
            "SELECT application_name, client_addr::text, state, sync_state, "
            "EXTRACT(EPOCH FROM replay_lag), "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn)::bigint "
            "FROM pg_stat_replication ORDER BY application_name"
        )
    ).all()
    return Replication(
        is_replica=False,
        replicas=[
            Replica(
                name=r[0] or "",
                client=r[1],
                state=r[2],
                sync_state=r[3],
                replay_lag_s=None if r[4] is None else float(r[4]),
                lag_bytes=None if r[5] is None else int(r[5]),
            )
            for r in rows
        ],
    )


def partition_coverage(conn: sa.Connection, *, today: date) -> list[PartitionCoverage]:
    """How far ahead each partitioned table has monthly partitions. A row whose month has none
    lands in the default partition, which retention cannot drop."""
    out = []
    current = month_start(today)
    for table in PARTITIONED_TABLES:
        children = conn.execute(
            sa.text(
                "SELECT c.relname, pg_get_expr(c.relpartbound, c.oid), "
                "coalesce(s.n_live_tup, 0) "
                "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                "JOIN pg_class p ON p.oid = i.inhparent "
                "JOIN pg_namespace n ON n.oid = p.relnamespace "
                "LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
                "WHERE p.relname = :table AND n.nspname = current_schema()"
            ),
            {"table": table},
        ).all()
        ranges: list[tuple[date, date]] = []
        default_rows = 0
        for _, bound, live in children:
            found = _BOUND.search(bound or "")
            if found:
                ranges.append((date.fromisoformat(found[1]), date.fromisoformat(found[2])))
            elif (bound or "").strip().upper() == "DEFAULT":
                default_rows = int(live)
        cursor = current
        while True:
            end = next((e for s, e in ranges if s <= cursor < e), None)
            if end is None:
                break
            cursor = end
        months = (cursor.year * 12 + cursor.month) - (current.year * 12 + current.month)
        out.append(
            PartitionCoverage(
                table=table,
                partitions=len(ranges),
                months_ahead=months - 1,
                covered_until=cursor if months else None,
                default_rows=default_rows,
            )
        )
    return out


def dead_rows_by_table(conn: sa.Connection) -> list[tuple[str, int]]:
    """Every table's dead tuples, for the /metrics gauge."""
    rows = conn.execute(
        sa.text("SELECT relname, n_dead_tup FROM pg_stat_user_tables ORDER BY relname")
    ).all()
    return [(str(r[0]), int(r[1])) for r in rows]


# --- SQLite -------------------------------------------------------------------------------------


def sqlite_health(conn: sa.Connection, path: str) -> SqliteHealth:
    def pragma(name: str) -> Any:
        # Names come from the calls below, never from input.
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()

    wal = f"{path}-wal"
    return SqliteHealth(
        path=path,
        file_bytes=os.path.getsize(path) if path and os.path.exists(path) else 0,
        wal_bytes=os.path.getsize(wal) if path and os.path.exists(wal) else 0,
        page_size=int(pragma("page_size")),
        page_count=int(pragma("page_count")),
        freelist_count=int(pragma("freelist_count")),
        journal_mode=str(pragma("journal_mode")),
    )


# --- what to act on -----------------------------------------------------------------------------


def warnings(report: DbHealth) -> list[str]:
    out: list[str] = []
    pool = report.pool
    if pool is not None and pool.checked_out >= pool.size + pool.max_overflow:
        out.append(
            f"connection pool exhausted: {pool.checked_out} of {pool.size + pool.max_overflow} "
            "in use; requests wait for a connection (SHIPBOARD_DB_POOL_SIZE)"
        )
    if report.postgres is not None:
        out += _postgres_warnings(report.postgres)
    if report.sqlite is not None:
        lite = report.sqlite
        if lite.page_count and lite.freelist_count / lite.page_count > FREELIST_WARN_RATIO:
            free = lite.freelist_count * lite.page_size
            out.append(f"{free} bytes of the file are free pages; VACUUM would return them")
        if lite.wal_bytes > WAL_WARN_BYTES:
            out.append(
                f"the WAL file is {lite.wal_bytes} bytes: checkpoints are not keeping up "
                "(a long-running reader holds them back)"
            )
    return out


def _postgres_warnings(pg: PostgresHealth) -> list[str]:
    out: list[str] = []
    usable = pg.connections.max - pg.connections.reserved
    if usable > 0 and pg.connections.used / usable > CONNECTIONS_WARN_RATIO:
        out.append(
            f"{pg.connections.used} of {usable} connections in use: lower the pool sizes "
            "or put PgBouncer in front"
        )
    for table in pg.bloat:
        if table.dead_rows >= BLOAT_WARN_ROWS and table.dead_ratio >= BLOAT_WARN_RATIO:
            out.append(
                f"{table.table}: {table.dead_rows} dead rows ({table.dead_ratio:.0%}); "
                "autovacuum is behind"
            )
    for replica in pg.replication.replicas:
        if replica.replay_lag_s is not None and replica.replay_lag_s > REPLICATION_WARN_S:
            out.append(f"replica {replica.name} is {replica.replay_lag_s:.0f} s behind")
    for part in pg.partitions:
        if part.months_ahead < 1:
            out.append(
                f"{part.table}: no partition for next month yet (shipboard serve and the "
                "retention job create them)"
            )
        if part.default_rows:
            out.append(
                f"{part.table}: {part.default_rows} rows in the default partition "
                "(a month without a partition); retention cannot drop them"
            )
    return out
