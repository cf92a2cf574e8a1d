"""One leader among many processes: a session advisory lock held on a connection of its own.

A transaction-level lock only keeps two rounds from overlapping; two nodes whose rounds fall at
different moments would both win and both run the periodic jobs. Holding a session lock on a
dedicated connection makes leadership sticky until the holder dies: PostgreSQL releases the lock
when the connection closes (at once when the process is killed on the same network, after TCP
keepalives otherwise), and another node takes it at its next attempt.
"""

from __future__ import annotations

import contextlib
import os
import socket

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

log = structlog.get_logger("shipboard.leader")

# Beside MIGRATION_LOCK_ID (0x5B1B0A4D) and alerting's EVALUATION_LOCK (0x5B1B0A4E).
SCHEDULER_LEADER_LOCK = 0x5B1B0A50
APPLICATION_NAME = "shipboard-leader"


def node_name() -> str:
    """How this process is named in logs and in ``pg_stat_activity.application_name``."""
    return f"{socket.gethostname()}:{os.getpid()}"


class LeaderElection:
    """``holds()`` answers, each time it is asked, whether this process leads.

    On SQLite there is one process by construction, so it always leads.
    """

    def __init__(self, engine: Engine, *, key: int = SCHEDULER_LEADER_LOCK) -> None:
        self.key = key
        self.node = node_name()
        self._postgres = engine.dialect.name == "postgresql"
        self._conn: sa.Connection | None = None
        self._lock_engine: Engine | None = None
        if self._postgres:
            # Outside the pool: the connection lives as long as the leadership, and the pool's
            # size stays what the settings say. Named, so an operator sees who leads.
            self._lock_engine = sa.create_engine(
                engine.url,
                poolclass=sa.pool.NullPool,
                connect_args={"application_name": f"{APPLICATION_NAME} {self.node}"[:63]},
            )

    @property
    def leading(self) -> bool:
        return not self._postgres or self._conn is not None

    def holds(self) -> bool:
        """True if this process leads now: keeps a lock it has (if its connection still answers)
        or tries to take it."""
        if self._lock_engine is None:
            return True
        if self._conn is not None:
            try:
                self._conn.execute(sa.text("SELECT 1"))
                return True
            except SQLAlchemyError:
                log.warning("leadership_lost", node=self.node)
                self._close()
        try:
            conn = self._lock_engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        except SQLAlchemyError:
            return False
        try:
            won = bool(conn.scalar(sa.select(sa.func.pg_try_advisory_lock(self.key))))
        except SQLAlchemyError:
            won = False
        if not won:
            conn.close()
            return False
        self._conn = conn
        log.info("leadership_acquired", node=self.node)
        return True

    def release(self) -> None:
        """Give leadership up (on a clean stop), so another node need not wait."""
        if self._conn is not None:
            # Closing the connection releases it too; unlocking first is only the polite way.
            with contextlib.suppress(SQLAlchemyError):
                self._conn.execute(sa.select(sa.func.pg_advisory_unlock(self.key)))
            self._close()
        if self._lock_engine is not None:
            self._lock_engine.dispose()

    def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(SQLAlchemyError):  # a broken connection: nothing to return
                conn.close()
