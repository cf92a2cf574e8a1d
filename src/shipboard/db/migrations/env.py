"""Alembic environment: one chain of revisions for SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import context

from shipboard.config import get_settings
from shipboard.core.errors import Conflict
from shipboard.db.engine import create_db_engine
from shipboard.models import metadata

# Any number of `shipboard serve` processes may start at once against one PostgreSQL;
# the first migrates, the others wait on this lock and then find nothing to do.
MIGRATION_LOCK_ID = 0x5B1B0A4D
# How many rows of a failed foreign key check the error names.
SHOWN_VIOLATIONS = 20


class ForeignKeyViolation(Conflict):
    """The migrations left rows that reference rows which do not exist; nothing was changed
    (the CLI says so and exits 1)."""


def run_migrations(connection: sa.Connection) -> None:
    if connection.dialect.name == "sqlite":
        _run_sqlite_migrations(connection)
        return
    context.configure(connection=connection, target_metadata=metadata, compare_type=True)
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID}
            )
        context.run_migrations()


def _run_sqlite_migrations(connection: sa.Connection) -> None:
    """SQLite's own procedure for schema changes it cannot make in place
    (https://www.sqlite.org/lang_altertable.html#otheralter): foreign keys off, every change in
    one transaction, ``PRAGMA foreign_key_check`` before the commit, foreign keys on again.

    SQLite cannot alter a constraint, so a batch migration copies the table, drops the old one
    and renames the copy. With foreign keys on, that DROP TABLE first deletes every row, and ON
    DELETE CASCADE deletes the rows of other tables that reference them: 20261203_0017 emptied
    finding_occurrences that way. ``PRAGMA foreign_keys`` is a no-op inside a transaction, so it
    is set on the driver's connection before the migrations' transaction begins (the engine
    issues no implicit BEGIN: it sends BEGIN itself when SQLAlchemy begins one)."""
    if connection.in_transaction():
        raise RuntimeError(
            "SQLite migrations need a connection outside any transaction: PRAGMA foreign_keys "
            "cannot be turned off inside one"
        )
    driver = connection.connection.driver_connection
    assert driver is not None
    driver.execute("PRAGMA foreign_keys=OFF")
    try:
        if driver.execute("PRAGMA foreign_keys").fetchone()[0] != 0:
            raise RuntimeError("SQLite did not turn foreign keys off for the migrations")
        applied: list[Any] = []
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=True,
            compare_type=True,
            # SQLite's DDL is transactional (the engine sends BEGIN itself): all the revisions
            # of one upgrade commit together, after the foreign key check, or not at all.
            transactional_ddl=True,
            on_version_apply=lambda step, **_: applied.append(step),
        )
        with context.begin_transaction():
            context.run_migrations()
            # Nothing ran (every `serve` start): the database is as it was, no need to scan it.
            if applied:
                _check_foreign_keys(connection, applied)
    finally:
        driver.execute("PRAGMA foreign_keys=ON")


def _check_foreign_keys(connection: sa.Connection, steps: list[Any]) -> None:
    violations = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
    if not violations:
        return
    verb = "upgrade" if steps[0].is_upgrade else "downgrade"
    revisions = [step.up_revision_id for step in steps]
    span = revisions[0] if len(revisions) == 1 else f"{revisions[0]} … {revisions[-1]}"
    shown = "; ".join(
        f"{table} row {rowid} references a missing {parent} row"
        for table, rowid, parent, _fk in violations[:SHOWN_VIOLATIONS]
    )
    more = len(violations) - SHOWN_VIOLATIONS
    raise ForeignKeyViolation(
        f"after the {verb} ({span}), {len(violations)} rows reference rows that do not exist "
        f"({shown}{f'; {more} more' if more > 0 else ''}): the {verb} was rolled back, "
        "nothing was changed"
    )


connection = context.config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:
    url = context.config.get_main_option("sqlalchemy.url") or get_settings().effective_database_url
    engine = create_db_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            run_migrations(conn)
    finally:
        engine.dispose()
