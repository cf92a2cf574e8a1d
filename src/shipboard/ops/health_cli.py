"""`shipboard db health`: the database health report, run directly against the database."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from shipboard.config import get_settings
from shipboard.core import formatting
from shipboard.core.terminal import console
from shipboard.db.engine import create_db_engine
from shipboard.ops import dbhealth
from shipboard.ops.schemas import DbHealth, PostgresHealth, SqliteHealth

out = console(soft_wrap=True)


def db_health(
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print one JSON document on standard output, for scripts."),
    ] = False,
    limit: Annotated[int, typer.Option(min=1, max=100, help="Rows per list")] = 10,
    large_table_rows: Annotated[
        int, typer.Option(min=0, help="Tables from this many rows count for sequential scans")
    ] = 10_000,
) -> None:
    """Slow queries, unused indexes, sequential scans, bloat, connections, replication lag and
    partition coverage (PostgreSQL); file, WAL and free pages (SQLite). Exit 1 on warnings."""
    engine = create_db_engine(get_settings().effective_database_url)
    try:
        report = dbhealth.collect(engine, limit=limit, large_table_rows=large_table_rows)
    finally:
        engine.dispose()
    if as_json:
        print(json.dumps(report.model_dump(mode="json"), indent=2))
    else:
        render(report)
    if report.warnings:
        raise typer.Exit(1)


def render(report: DbHealth) -> None:
    if report.postgres is not None:
        _postgres(report.postgres)
    if report.sqlite is not None:
        _sqlite(report.sqlite)
    if report.warnings:
        out.print("warnings", style="bold")
        for warning in report.warnings:
            out.print(f"  - {warning}", markup=False)
    else:
        out.print("no warnings")


def _sqlite(lite: SqliteHealth) -> None:
    out.print(f"SQLite {lite.path} ({lite.journal_mode})", markup=False)
    out.print(
        f"file {formatting.size(lite.file_bytes)}, WAL {formatting.size(lite.wal_bytes)}, "
        f"{lite.page_count} pages of {lite.page_size} bytes, {lite.freelist_count} free"
    )


def _postgres(pg: PostgresHealth) -> None:
    c = pg.connections
    out.print(
        f"PostgreSQL {pg.version}, database {formatting.size(pg.database_bytes)}, statistics since "
        f"{pg.stats_since or 'the server started'}"
    )
    states = ", ".join(f"{n} {s}" for s, n in sorted(c.by_state.items()))
    out.print(
        f"connections: {c.used} of {c.max} ({c.reserved} reserved); this database {c.this_database}"
        + (f": {states}" if states else "")
    )
    if pg.slow_queries.available:
        _table(
            "slowest queries (mean)",
            ["mean ms", "calls", "total ms", "query"],
            [
                [f"{q.mean_ms:.2f}", str(q.calls), f"{q.total_ms:.0f}", q.query[:120]]
                for q in pg.slow_queries.items
            ],
        )
    else:
        out.print(f"slow queries: {pg.slow_queries.message}", markup=False)
    _table(
        "unused indexes",
        ["table", "index", "size"],
        [[i.table, i.index, formatting.size(i.size_bytes)] for i in pg.unused_indexes],
    )
    _table(
        "sequential scans on large tables",
        ["table", "rows", "seq scans", "rows read", "index scans"],
        [
            [s.table, str(s.live_rows), str(s.seq_scans), str(s.seq_rows_read), str(s.index_scans)]
            for s in pg.sequential_scans
        ],
    )
    _table(
        "dead tuples",
        ["table", "live", "dead", "dead %", "last autovacuum"],
        [
            [
                b.table,
                str(b.live_rows),
                str(b.dead_rows),
                f"{b.dead_ratio:.1%}",
                str(b.last_autovacuum or "never"),
            ]
            for b in pg.bloat
        ],
    )
    repl = pg.replication
    if repl.is_replica:
        out.print(f"this server is a replica, replay {repl.replay_delay_s} s behind")
    elif repl.replicas:
        _table(
            "replicas",
            ["name", "client", "state", "sync", "lag s", "lag bytes"],
            [
                [
                    r.name,
                    r.client or "",
                    r.state or "",
                    r.sync_state or "",
                    "" if r.replay_lag_s is None else f"{r.replay_lag_s:.1f}",
                    "" if r.lag_bytes is None else str(r.lag_bytes),
                ]
                for r in repl.replicas
            ],
        )
    else:
        out.print("replication: no replicas")
    _table(
        "partitions",
        ["table", "partitions", "months ahead", "covered until", "default rows"],
        [
            [
                p.table,
                str(p.partitions),
                str(p.months_ahead),
                str(p.covered_until or "-"),
                str(p.default_rows),
            ]
            for p in pg.partitions
        ],
    )


def _table(title: str, columns: list[str], rows: list[list[str]]) -> None:
    if not rows:
        out.print(f"{title}: none")
        return
    table = Table(title=title, title_justify="left")
    for i, column in enumerate(columns):
        # Names stay whole (they are what one copies into a query); the rest wraps to fit.
        table.add_column(column, no_wrap=i < 2, overflow="fold")
    for row in rows:
        table.add_row(*row)
    out.print(table)
