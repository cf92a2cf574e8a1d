"""`shipboard db copy`: a whole SQLite instance into an empty PostgreSQL database.

The target is migrated to the latest revision first, so it has PostgreSQL's own schema (native
types, partitions, row-level security, the audit trigger); then every table is copied in
foreign-key order, in batches, inside one transaction, and compared table by table with the
source by row count and content checksum (the ones backups use) before that transaction
commits. A copy that fails or differs leaves the target as empty as it was.

Secret values are copied as they are stored, still encrypted: the target needs the same
``SHIPBOARD_SECRET_KEYS`` (or key file) as the source.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from shipboard.config import normalize_database_url
from shipboard.core.errors import Conflict, InvalidInput, ShipboardError
from shipboard.db import migrate
from shipboard.db.engine import create_db_engine
from shipboard.db.partitions import PARTITIONED_TABLES, ensure_partitions
from shipboard.ops.backup.checksums import TableDigest, compare_tables
from shipboard.ops.backup.contents import (
    count_rows,
    database_digests,
    require_bypass_rls,
    schema_revision,
    tables_with_rows,
    user_tables,
)
from shipboard.ops.backup.progress import SILENT, Progress, Task

BATCH = 2000


@dataclass
class CopyReport:
    tables: dict[str, TableDigest]
    seconds: float
    partitions_created: list[str] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return sum(t.rows for t in self.tables.values())


def copy_database(
    source_url: str, target_url: str, *, batch_size: int = BATCH, progress: Progress = SILENT
) -> CopyReport:
    """Copy the SQLite database at ``source_url`` into the empty PostgreSQL database at
    ``target_url`` and verify the copy; stop the server first (writes made during the copy are
    not in it: the copy reads one snapshot)."""
    from shipboard.models import metadata

    started = time.monotonic()
    source_url = normalize_database_url(source_url)
    target_url = normalize_database_url(target_url)
    if not source_url.startswith("sqlite"):
        raise InvalidInput(
            "db copy moves a SQLite database to PostgreSQL, and the configured database is "
            "not SQLite (between PostgreSQL servers, use backup and restore)"
        )
    if not target_url.startswith("postgresql"):
        raise InvalidInput("--to must be a postgresql:// URL")
    database = make_url(source_url).database
    if not database or not Path(database).is_file():
        raise InvalidInput(f"no SQLite database at {database}")
    tables = list(metadata.sorted_tables)
    names = [t.name for t in tables]
    source_engine = create_db_engine(source_url, poolclass=sa.pool.NullPool)
    target_engine = create_db_engine(target_url, poolclass=sa.pool.NullPool)
    try:
        with source_engine.connect() as src:
            _check_source(src, names)
        with target_engine.connect() as dst:
            require_bypass_rls(dst, what="db copy")
            occupied = tables_with_rows(dst)
            if occupied:
                raise Conflict(
                    f"the target database is not empty (rows in {', '.join(occupied[:5])}): "
                    "db copy writes only into an empty database"
                )
        migrate.upgrade(target_url)
        with source_engine.connect() as src, target_engine.connect() as dst:
            # One read transaction: every table and every checksum from the same snapshot.
            src.begin()
            with dst.begin():
                created = _create_partitions(src, dst)
                counts = count_rows(src, names)
                task = progress.task("copying rows", total=sum(counts.values()) or None)
                try:
                    for table in tables:
                        _copy_table(src, dst, table, batch_size=batch_size, task=task)
                finally:
                    task.finish()
                _reset_sequences(dst, tables)
                copied = database_digests(dst, progress=progress, tables=names)
                original = database_digests(src, progress=progress, tables=names)
                problems = compare_tables(original, copied, what="the source")
                if problems:
                    raise ShipboardError(
                        "the copy does not match the source, so nothing was committed: "
                        + "; ".join(problems)
                    )
            src.rollback()
    finally:
        source_engine.dispose()
        target_engine.dispose()
    return CopyReport(tables=copied, seconds=time.monotonic() - started, partitions_created=created)


def _check_source(src: sa.Connection, names: list[str]) -> None:
    revision, head = schema_revision(src), migrate.head_revision()
    if revision != head:
        raise InvalidInput(
            f"the SQLite database is at schema revision {revision or 'none'}, this Shipboard's "
            f"latest is {head}: run `shipboard db upgrade` on it first"
        )
    unknown = sorted(set(user_tables(src)) - set(names))
    if unknown:
        raise InvalidInput(
            f"the SQLite database has tables this Shipboard does not know: {', '.join(unknown)}"
        )


def _create_partitions(src: sa.Connection, dst: sa.Connection) -> list[str]:
    """Monthly partitions for every month the source's time series cover, before any row
    arrives: rows of a month without one would land in the default partition, which then
    forbids creating that month's partition later."""
    months: set[date] = set()
    for table in PARTITIONED_TABLES:
        for (prefix,) in src.execute(
            sa.text(
                f'SELECT DISTINCT substr("timestamp", 1, 7) FROM {table} '
                'WHERE "timestamp" IS NOT NULL'
            )
        ):
            try:
                year, number = str(prefix).split("-")
                months.add(date(int(year), int(number), 1))
            except ValueError:
                continue  # not a time Shipboard wrote: the default partition takes it
    created = ensure_partitions(dst, months_ahead=1)
    for month in sorted(months):
        created += ensure_partitions(dst, today=month, months_ahead=0)
    return created


def _source_column(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    if isinstance(column.type, sa.JSON):
        # The stored text: SQL NULL stays NULL and a JSON null stays a JSON null.
        return sa.type_coerce(column, sa.Text()).label(column.name)
    if _is_number(column):
        return sa.type_coerce(column, sa.types.NullType()).label(column.name)
    return column


def _is_number(column: sa.Column[Any]) -> bool:
    type_ = getattr(column.type, "impl", column.type)  # NumberType is a TypeDecorator
    return isinstance(type_, sa.Numeric) and not isinstance(type_, sa.Integer)


def _number(value: Any) -> Any:
    # The float's shortest repr, exactly: a float sent as such would be rounded to 15
    # significant digits by PostgreSQL's float8-to-numeric cast.
    return Decimal(repr(value)) if isinstance(value, float) else value


def _references_own_table(column: sa.Column[Any], table: sa.Table) -> bool:
    return any(fk.column.table is table for fk in column.foreign_keys)


def _copy_table(
    src: sa.Connection, dst: sa.Connection, table: sa.Table, *, batch_size: int, task: Task
) -> None:
    """Stream one table through COPY (several times faster than INSERTs), inside the target's
    open transaction."""
    import psycopg

    columns = list(table.columns)
    numbers = [i for i, c in enumerate(columns) if _is_number(c)]
    # A row may point at a row of its own table not copied yet (a rollback at the deployment
    # it rolled back): copy those columns empty, then fill them in once every row is there.
    self_refs = [i for i, c in enumerate(columns) if _references_own_table(c, table)]
    keys = [i for i, c in enumerate(columns) if c.primary_key]
    later: list[dict[str, Any]] = []
    quote = dst.dialect.identifier_preparer.quote
    statement = f"COPY {quote(table.name)} ({', '.join(quote(c.name) for c in columns)}) FROM STDIN"
    result = src.execute(
        sa.select(*[_source_column(c) for c in columns]),
        execution_options={"yield_per": batch_size},
    )
    raw: Any = dst.connection.dbapi_connection
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for batch in result.partitions():
                for row in batch:
                    values = list(row)
                    for i in numbers:
                        values[i] = _number(values[i])
                    if any(values[i] is not None for i in self_refs):
                        later.append(
                            {f"k_{columns[i].name}": values[i] for i in keys}
                            | {f"v_{columns[i].name}": values[i] for i in self_refs}
                        )
                        for i in self_refs:
                            values[i] = None
                    # Python values in, PostgreSQL's text forms out: uuid, timestamptz with its
                    # offset, exact decimals; JSON goes as its stored text, which jsonb parses.
                    copy.write_row(values)
                task.advance(len(batch))
        if later:
            dst.execute(
                _fill_in(table, [columns[i] for i in keys], [columns[i] for i in self_refs]), later
            )
    except (psycopg.Error, sa.exc.DBAPIError) as exc:
        cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        first = (str(cause).strip() or type(cause).__name__).splitlines()[0]
        raise ShipboardError(
            f"copying table {table.name} failed, so nothing was committed: {first}"
        ) from exc


def _fill_in(table: sa.Table, keys: list[sa.Column[Any]], refs: list[sa.Column[Any]]) -> sa.Update:
    return (
        sa.update(table)
        .where(*[c == sa.bindparam(f"k_{c.name}", type_=c.type) for c in keys])
        .values({c.name: sa.bindparam(f"v_{c.name}", type_=c.type) for c in refs})
    )


def _reset_sequences(dst: sa.Connection, tables: list[sa.Table]) -> None:
    """Serial columns (none today) must continue after the copied values, not at 1."""
    for table in tables:
        for column in table.columns:
            if not isinstance(column.type, sa.Integer):
                continue
            sequence = dst.scalar(
                sa.text("SELECT pg_get_serial_sequence(:t, :c)"),
                {"t": table.name, "c": column.name},
            )
            if sequence:
                dst.execute(
                    sa.text(
                        f'SELECT setval(:s, COALESCE((SELECT max("{column.name}") '
                        f'FROM "{table.name}"), 0) + 1, false)'
                    ),
                    {"s": sequence},
                )
