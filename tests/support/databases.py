"""Real test databases: SQLite files and PostgreSQL databases created per run and dropped after.

PostgreSQL tests use ``SHIPBOARD_TEST_POSTGRES_URL`` (default: the local server). Without a
server they skip, except under ``CI=true``, where a missing PostgreSQL is a failure.
"""

from __future__ import annotations

import os
import uuid
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from shipboard.audit.service import AuditContext
from shipboard.db.engine import create_db_engine

PG_BASE_URL = os.environ.get(
    "SHIPBOARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
SYSTEM = AuditContext(actor="tests", actor_role="admin")
IN_CI = os.environ.get("CI", "").lower() == "true"

_pg_checked: list[str | None] = []


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used (checked once per run), or None when it can."""
    if not _pg_checked:
        try:
            engine = create_db_engine(PG_BASE_URL, poolclass=sa.pool.NullPool)
            with engine.connect() as conn:
                conn.execute(sa.text("SELECT 1"))
            engine.dispose()
            _pg_checked.append(None)
        except Exception as exc:  # noqa: BLE001 - any failure means "no server to test against"
            _pg_checked.append(f"PostgreSQL at {PG_BASE_URL} unavailable: {type(exc).__name__}")
    return _pg_checked[0]


def require_postgres() -> None:
    """Skip the test without PostgreSQL; under ``CI=true``, fail it."""
    reason = postgres_unavailable()
    if reason:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: PostgreSQL tests must run)")
        pytest.skip(reason)


@dataclass
class Database:
    backend: str
    url: str

    def engine(self, **kwargs: object) -> Engine:
        return create_db_engine(self.url, **kwargs)  # type: ignore[arg-type]


class DatabaseFactory:
    """Creates empty databases on demand and removes them at the end of the session."""

    def __init__(self, tmp_dir: str) -> None:
        self.tmp_dir = tmp_dir
        self.pg_names: list[str] = []

    def new(self, backend: str) -> Database:
        if backend == "sqlite":
            return Database("sqlite", f"sqlite:///{self.tmp_dir}/{uuid.uuid4().hex}.db")
        require_postgres()
        name = f"shipboard_test_{uuid.uuid4().hex[:12]}"
        admin = create_db_engine(
            PG_BASE_URL, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        self.pg_names.append(name)
        url = make_url(create_db_engine(PG_BASE_URL).url).set(database=name)
        return Database("postgres", url.render_as_string(hide_password=False))

    def drop_all(self) -> None:
        if not self.pg_names:
            return
        admin = create_db_engine(
            PG_BASE_URL, poolclass=sa.pool.NullPool, isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as conn:
            for name in self.pg_names:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
