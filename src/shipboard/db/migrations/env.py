"""Alembic environment: one chain of revisions for SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import context

from shipboard.config import get_settings
from shipboard.db.engine import create_db_engine
from shipboard.models import metadata

# Any number of `shipboard serve` processes may start at once against one PostgreSQL;
# the first migrates, the others wait on this lock and then find nothing to do.
MIGRATION_LOCK_ID = 0x5B1B0A4D


def run_migrations(connection: sa.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(
                sa.text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID}
            )
        context.run_migrations()


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
