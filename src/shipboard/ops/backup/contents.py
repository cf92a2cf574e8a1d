"""Reading what a database holds: its tables, their rows and checksums, its partitions and
schema revision."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from shipboard.core.errors import InvalidInput
from shipboard.db.engine import create_db_engine, is_postgres
from shipboard.ops.backup.checksums import Digest, TableDigest, canonical_value, column_kind
from shipboard.ops.backup.progress import SILENT, Progress

BATCH = 5000


def user_tables(conn: sa.Connection) -> list[str]:
    """Every table of the schema, partitions excepted (their parents hold their rows) and
    Alembic's bookkeeping, which the manifest records as the schema revision."""
    if is_postgres(conn):
        names = conn.scalars(
            sa.text(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') "
                "AND NOT c.relispartition"
            )
        ).all()
    else:
        names = conn.scalars(
            sa.text(
                "SELECT name FROM sqlite_master WHERE type = 'table' "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            )
        ).all()
    return sorted(str(n) for n in names if n != "alembic_version")


def partition_counts(conn: sa.Connection) -> dict[str, int]:
    """Rows per partition on PostgreSQL (an empty mapping on SQLite)."""
    if not is_postgres(conn):
        return {}
    names = conn.scalars(
        sa.text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND p.relkind = 'p'"
        )
    ).all()
    quote = conn.dialect.identifier_preparer.quote
    return {
        str(name): int(conn.scalar(sa.text(f"SELECT count(*) FROM {quote(name)}")) or 0)
        for name in sorted(names)
    }


def schema_revision(conn: sa.Connection) -> str | None:
    if "alembic_version" not in sa.inspect(conn).get_table_names():
        return None
    value = conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
    return str(value) if value is not None else None


def count_rows(conn: sa.Connection, tables: list[str]) -> dict[str, int]:
    quote = conn.dialect.identifier_preparer.quote
    return {t: int(conn.scalar(sa.text(f"SELECT count(*) FROM {quote(t)}")) or 0) for t in tables}


def tables_with_rows(conn: sa.Connection) -> list[str]:
    quote = conn.dialect.identifier_preparer.quote
    return [
        t
        for t in user_tables(conn)
        if conn.scalar(sa.text(f"SELECT EXISTS (SELECT 1 FROM {quote(t)})"))
    ]


def table_digest(
    conn: sa.Connection, table: str, *, advance: Callable[[float], None] | None = None
) -> TableDigest:
    """Row count and content checksum of one table, streamed in batches."""
    columns = [(c["name"], column_kind(c["type"])) for c in sa.inspect(conn).get_columns(table)]
    quote = conn.dialect.identifier_preparer.quote
    pg = is_postgres(conn)
    selected = ", ".join(
        f"CAST({quote(name)} AS TEXT)" if pg and kind == "json" else quote(name)
        for name, kind in columns
    )
    digest = Digest()
    result = conn.exec_driver_sql(
        f"SELECT {selected} FROM {quote(table)}", execution_options={"yield_per": BATCH}
    )
    for batch in result.partitions():
        for row in batch:
            digest.add(
                {
                    name: canonical_value(value, kind)
                    for (name, kind), value in zip(columns, row, strict=True)
                }
            )
        if advance is not None:
            advance(len(batch))
    return digest.result()


def database_digests(
    conn: sa.Connection, *, progress: Progress = SILENT, tables: list[str] | None = None
) -> dict[str, TableDigest]:
    """Digests of every table (or of ``tables``), with one progress bar over all their rows."""
    tables = user_tables(conn) if tables is None else tables
    counts = count_rows(conn, tables)
    task = progress.task("checksums", total=sum(counts.values()) or None)
    try:
        return {t: table_digest(conn, t, advance=task.advance) for t in tables}
    finally:
        task.finish()


def require_bypass_rls(conn: sa.Connection, *, what: str) -> None:
    """Row-level security would hide rows from a role that does not bypass it (and pg_dump
    refuses to run under it): whole-database work needs a superuser or a BYPASSRLS role."""
    if not is_postgres(conn):
        return
    if conn.scalar(
        sa.text("SELECT rolsuper OR rolbypassrls FROM pg_roles WHERE rolname = current_user")
    ):
        return
    raise InvalidInput(
        f"{what} needs a PostgreSQL role that bypasses row-level security (a superuser, or the "
        "owner with BYPASSRLS): under RLS some rows would be missed"
    )


def sqlite_file(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise InvalidInput("backups need a SQLite database file, not an in-memory database")
    return Path(database)


def plain_sqlite_engine(path: Path) -> Engine:
    # Not create_db_engine: it would switch a scratch copy to WAL and leave -wal/-shm files.
    return sa.create_engine(f"sqlite:///{path}", poolclass=sa.pool.NullPool)


def digest_database(
    url: str, *, progress: Progress
) -> tuple[str | None, dict[str, TableDigest], dict[str, int]]:
    engine = (
        plain_sqlite_engine(sqlite_file(url))
        if url.startswith("sqlite")
        else create_db_engine(url, poolclass=sa.pool.NullPool)
    )
    try:
        with engine.connect() as conn:
            return (
                schema_revision(conn),
                database_digests(conn, progress=progress),
                partition_counts(conn),
            )
    finally:
        engine.dispose()
