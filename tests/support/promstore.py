"""Putting points into a real Prometheus-compatible store (Prometheus or VictoriaMetrics, the
peers of tests/support/live.py) the way users' applications do, and a Shipboard server that
reads it (SHIPBOARD_PROMETHEUS_URL)."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from shipboard.db.engine import create_db_engine, system_transaction
from shipboard.monitoring import remote_write as rw
from tests.support.live import Clients, LiveServer, free_port
from tests.support.users import role_tokens


@dataclass
class Store:
    """A real store the tests remote-write to and Shipboard reads from (the ``store`` fixture
    of tests/conftest.py: Prometheus or VictoriaMetrics)."""

    url: str
    flush: Callable[[], None]


def remote_write(
    url: str,
    name: str,
    value: float,
    *,
    environment: str = "production",
    tags: dict[str, str] | None = None,
    at: float | None = None,
) -> None:
    """One sample of ``name{environment=…, source="app", tags…}`` at ``at`` (default: now),
    remote-written to the store at ``url``."""
    series, _ = rw.series_for(
        name=name,
        environment=environment,
        source="app",
        tags=tags or {},
        samples=[(int((at if at is not None else time.time()) * 1000), value)],
    )
    answer = httpx.post(
        f"{url}/api/v1/write",
        content=rw.encode([series]),
        headers={"Content-Type": rw.CONTENT_TYPE, "Content-Encoding": rw.CONTENT_ENCODING},
        timeout=10,
    )
    assert answer.status_code in (200, 204), answer.text


@contextmanager
def store_clients(database_url: str, engine: Engine, store_url: str) -> Iterator[Clients]:
    """A Shipboard server of its own whose SHIPBOARD_PROMETHEUS_URL is ``store_url``, with one
    user per role; stopped after."""
    live = LiveServer(database_url, prometheus_url=store_url)
    live.start()
    try:
        with system_transaction(engine) as session:
            tokens = role_tokens(session)
        yield Clients(server=live, tokens=tokens)
    finally:
        live.stop()


def writer_blocked(database_url: str) -> str | None:
    """Why another writer could not write to the database right now, or None when it could:
    on SQLite, the write lock is taken (BEGIN IMMEDIATE, half a second); on PostgreSQL, a
    connection sits idle inside a transaction (holding its locks and snapshot)."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        conn = sqlite3.connect(str(url.database), timeout=0.5, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("ROLLBACK")
            return None
        except sqlite3.OperationalError as exc:
            return f"SQLite: {exc}"
        finally:
            conn.close()
    engine = create_db_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            idle = conn.execute(
                sa.text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                )
            ).scalar_one()
        return f"PostgreSQL: {idle} connection(s) idle in a transaction" if idle else None
    finally:
        engine.dispose()


class ProbingProxy:
    """An HTTP proxy in front of a real store that, before it forwards each query, asks
    ``probe`` whether the database is free (``writer_blocked``), and keeps the answers: a store
    query made while Shipboard holds a transaction shows up here."""

    def __init__(self, target: str, probe: Callable[[], str | None]) -> None:
        self.probes: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.probes.append(probe())
                answer = httpx.get(target + self.path, timeout=10)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", ""))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class HangingStore:
    """A loopback server that accepts every connection and never answers: a store that hangs.
    ``peak`` is the most connections it held open at once."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.held: list[socket.socket] = []
        self.peak = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return  # closed by stop()
            with self._lock:
                self.held = [c for c in self.held if _open(c)] + [conn]
                self.peak = max(self.peak, len(self.held))

    def stop(self) -> None:
        self.sock.close()
        with self._lock:
            for conn in self.held:
                conn.close()


def _open(conn: socket.socket) -> bool:
    """Whether the client still holds ``conn``: what it sent is read and dropped, and an end of
    stream means it gave up waiting and closed it."""
    conn.setblocking(False)
    try:
        while conn.recv(65536):
            pass
    except BlockingIOError:
        return True
    except OSError:
        pass
    conn.close()
    return False
