"""Engines and transactions for both backends."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool, QueuePool

from shipboard.config import normalize_database_url
from shipboard.core.files import private_file

APP_ROLE = "shipboard_app"
# SQLite's own checkpoints (every 1,000 pages, PASSIVE) never wait for readers, so under steady
# concurrent ingest there is always a reader and the WAL is never restarted: a 10 M-point bench
# grew it to 71 GB and filled the disk. Past this size a background checkpoint truncates it.
WAL_TRUNCATE_BYTES = 64 * 1024 * 1024
WAL_CHECK_EVERY_S = 1.0
WAL_CHECKPOINT_WAIT_MS = 3000
WAL_RETRY_S = 2.0
log = logging.getLogger(__name__)


def is_postgres(bind: Engine | sa.Connection | Session) -> bool:
    dialect = bind.get_bind().dialect if isinstance(bind, Session) else bind.dialect
    return dialect.name == "postgresql"


PG_CONNECT_DEFAULTS = {
    "connect_timeout": 10,
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
}


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    url = normalize_database_url(url)
    # Statement parameters never go into exception messages (and so never into logs): they
    # are users' data, and a batch of 10,000 points makes a megabyte of text.
    kwargs.setdefault("hide_parameters", True)
    if url.startswith("sqlite"):
        return _create_sqlite_engine(url, **kwargs)
    kwargs.setdefault("pool_pre_ping", True)
    # A server that vanishes without closing the socket (a dropped route, a dead host) would
    # otherwise hang a request for the kernel's TCP timeout, minutes, instead of failing it
    # with a 503. Settings in the URL's query win over these defaults.
    given = sa.engine.make_url(url).query
    connect_args = kwargs.setdefault("connect_args", {})
    for key, value in PG_CONNECT_DEFAULTS.items():
        if key not in given:
            connect_args.setdefault(key, value)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 10)
        kwargs.setdefault("max_overflow", 10)
    return sa.create_engine(url, **kwargs)


def create_async_twin(engine: Engine) -> AsyncEngine:
    """An asyncio engine for the same PostgreSQL database, with the same pool size and
    connection settings: the requests served on the event loop use it (http/db.py)."""
    pool = engine.pool
    kwargs: dict[str, Any] = {"hide_parameters": True, "pool_pre_ping": True}
    if isinstance(pool, QueuePool):
        # Requests wait for a slot (http/db.py) before they take a connection, so the pool
        # never lends more than its slots: keep them all open rather than closing overflow
        # connections on return and opening them again on the next request.
        kwargs["pool_size"] = pool.size() + max(int(getattr(pool, "_max_overflow", 0)), 0)
        kwargs["max_overflow"] = 0
        kwargs["pool_timeout"] = pool.timeout()
    else:
        kwargs["poolclass"] = NullPool
    url = engine.url.set(drivername="postgresql+psycopg")
    given = url.query
    kwargs["connect_args"] = {k: v for k, v in PG_CONNECT_DEFAULTS.items() if k not in given}
    return create_async_engine(url, **kwargs)


def _create_sqlite_engine(url: str, **kwargs: Any) -> Engine:
    database = sa.engine.make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        # 0600 before SQLite opens it: SQLite gives the -wal and -shm files the same mode.
        private_file(Path(database))
    engine = sa.create_engine(
        url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
        # Take over BEGIN from the sqlite3 module, whose implicit transactions do not
        # cover DDL and cannot be told to take the write lock up front.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.execute("PRAGMA synchronous=NORMAL")
        # After a checkpoint that restarts the log, shrink the file back to this size.
        cur.execute(f"PRAGMA journal_size_limit={WAL_TRUNCATE_BYTES}")
        cur.close()

    if database and database != ":memory:":
        _truncate_large_wal(engine, Path(database))

    @event.listens_for(engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        # A deferred transaction that later writes can fail with SQLITE_BUSY without waiting
        # (its snapshot went stale); writers therefore take the lock when they begin.
        if conn.get_execution_options().get("sqlite_immediate"):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


@contextmanager
def transaction(engine: Engine, *, write: bool = True) -> Iterator[Session]:
    """One all-or-nothing unit of work: commit when the block ends, roll back if it raises."""
    bind = engine.execution_options(sqlite_immediate=True) if write else engine
    with Session(bind, expire_on_commit=False, autoflush=False) as session, session.begin():
        yield session


def _truncate_large_wal(engine: Engine, database: Path) -> None:
    """When a connection returns to the pool and the WAL has grown past ``WAL_TRUNCATE_BYTES``,
    a background thread checkpoints it in TRUNCATE mode on a connection of its own: it waits up
    to ``WAL_CHECKPOINT_WAIT_MS`` for readers of older snapshots to finish (new writers wait
    while it is pending: the price of a bounded log), copies every frame into the database and
    cuts the log to zero. Checked at most once a second; one that cannot finish in time is tried
    again ``WAL_RETRY_S`` later. No request thread runs the checkpoint itself."""
    wal = Path(f"{database}-wal")
    state = {"next": 0.0}
    running = threading.Lock()

    def checkpoint() -> None:
        try:
            conn = sqlite3.connect(database, timeout=WAL_CHECKPOINT_WAIT_MS / 1000)
            try:
                conn.execute(f"PRAGMA busy_timeout={WAL_CHECKPOINT_WAIT_MS}")
                busy, frames, copied = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
            finally:
                conn.close()
            if busy:
                state["next"] = time.monotonic() + WAL_RETRY_S
                log.info("wal_checkpoint_deferred frames=%s copied=%s", frames, copied)
        except sqlite3.Error as exc:
            state["next"] = time.monotonic() + WAL_RETRY_S
            log.info("wal_checkpoint_failed error=%s", exc)
        finally:
            running.release()

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_conn: Any, _record: Any) -> None:
        now = time.monotonic()
        if now < state["next"]:
            return
        state["next"] = now + WAL_CHECK_EVERY_S
        try:
            if wal.stat().st_size < WAL_TRUNCATE_BYTES:
                return
        except FileNotFoundError:
            return
        if running.acquire(blocking=False):
            threading.Thread(
                target=checkpoint, name="shipboard-wal-checkpoint", daemon=True
            ).start()


def bind_identity(session: Session, *, role: str, user_id: str) -> None:
    """Make PostgreSQL's row-level security see the caller for the rest of this transaction.

    The connection's own user is often a superuser (which skips RLS even when forced), so the
    transaction drops to the restricted application role first.
    """
    if not is_postgres(session):
        return
    # set_config('role', …, true) is SET LOCAL ROLE; one statement is one round trip fewer.
    session.execute(
        sa.text(
            "SELECT set_config('role', :app_role, true), "
            "set_config('shipboard.role', :role, true), "
            "set_config('shipboard.user_id', :user_id, true)"
        ),
        {"app_role": APP_ROLE, "role": role, "user_id": user_id},
    )


@contextmanager
def system_transaction(engine: Engine) -> Iterator[Session]:
    """A transaction for operator commands and background jobs, acting as the system admin.

    Superusers skip RLS anyway; an owner that is not one is subject to the forced policies,
    which admit it through the admin role.
    """
    with transaction(engine) as session:
        if is_postgres(session):
            session.execute(
                sa.text(
                    "SELECT set_config('shipboard.role', 'admin', true), "
                    "set_config('shipboard.user_id', 'system', true)"
                )
            )
        yield session


def act_as_system(session: Session) -> None:
    """For the rest of this transaction, let the row-level policies admit what the service has
    already authorized on its own terms: the consequences of an approval, a rejection or a
    rollback, which change deployments the caller did not trigger."""
    if is_postgres(session):
        session.execute(sa.text("SELECT set_config('shipboard.role', 'admin', true)"))
