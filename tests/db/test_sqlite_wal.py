"""The SQLite write-ahead log stays bounded under steady concurrent use."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from shipboard.db import engine as engine_module
from shipboard.db.engine import create_db_engine
from tests.support.live import wait_for


def test_a_wal_grown_past_the_limit_is_truncated_once_readers_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's automatic checkpoints never restart a log that a reader is using, and never
    shrink the file: a reader open during heavy writes left the WAL at its high-water mark
    (71 GB in a 10 M-point bench). A connection returning to the pool truncates it."""
    monkeypatch.setattr(engine_module, "WAL_TRUNCATE_BYTES", 1024 * 1024)
    monkeypatch.setattr(engine_module, "WAL_CHECK_EVERY_S", 0.0)
    monkeypatch.setattr(engine_module, "WAL_RETRY_S", 0.1)
    database = tmp_path / "wal.db"
    wal = Path(f"{database}-wal")
    engine = create_db_engine(f"sqlite:///{database}")
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("CREATE TABLE t (id INTEGER PRIMARY KEY, body TEXT)")
        reader = sqlite3.connect(database)
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM t").fetchone()  # holds a snapshot
        for batch in range(20):
            with engine.begin() as conn:
                conn.execute(
                    sa.text("INSERT INTO t (body) VALUES (:body)"),
                    [{"body": f"{batch}-{i}" * 200} for i in range(200)],
                )
        grown = wal.stat().st_size
        assert grown > 4 * 1024 * 1024  # the reader kept every frame in the log
        reader.rollback()
        reader.close()

        def truncated() -> bool:  # the checkpoint runs on a thread of its own
            with engine.connect() as conn:  # returned to the pool: the check runs
                conn.exec_driver_sql("SELECT 1")
            return wal.stat().st_size == 0

        wait_for(truncated, timeout=10, interval=0.2)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar() == 20 * 200
    finally:
        engine.dispose()
