"""The request's transaction on the event loop (http/db.py's RequestDb): which way each kind of
route runs, that one transaction still commits or rolls back whole, and that row-level security
sees the caller on PostgreSQL's async connections."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from shipboard.app import create_app
from shipboard.auth.deps import AnyUser
from shipboard.config import Settings
from shipboard.db.engine import create_db_engine
from shipboard.http.db import DbSession, RequestDbDep
from tests.support.databases import Database


def _notes(session: Session) -> list[str]:
    return [row[0] for row in session.execute(sa.text("SELECT text FROM notes ORDER BY text"))]


def _add(session: Session, text: str) -> None:
    session.execute(sa.text("INSERT INTO notes VALUES (:t)"), {"t": text})


@pytest.fixture
def bare(empty_db: Database) -> Iterator[FastAPI]:
    """A bare app on a fresh database of each backend, with routes of every kind."""
    engine = create_db_engine(empty_db.url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE notes (text TEXT)"))
    app = FastAPI()
    app.state.engine = engine
    app.state.ran = []

    @app.get("/async/read")
    async def async_read(db: RequestDbDep) -> dict[str, Any]:
        loop_thread = threading.get_ident()
        ran_on = await db.run(lambda _s: threading.get_ident())
        return {"mode": db.mode, "on_loop_thread": ran_on == loop_thread}

    @app.post("/async/notes/{text}")
    async def async_write(text: str, db: RequestDbDep, request: Request) -> dict[str, Any]:
        await db.run(_add, text)
        request.state.after_rollback = [lambda: app.state.ran.append(f"after {text}")]
        if text == "boom":
            raise ValueError("refused after writing")
        # Visible inside the request's own transaction before it commits.
        return {"mode": db.mode, "seen": await db.run(_notes)}

    @app.get("/async/with-session")
    async def async_with_session(db: RequestDbDep, session: DbSession) -> dict[str, Any]:
        return {"mode": db.mode, "same": db.session is session}

    @app.get("/sync/read")
    def sync_read(session: DbSession) -> dict[str, Any]:
        return {"notes": _notes(session)}

    yield app
    engine.dispose()


def _stored(app: FastAPI) -> list[str]:
    with Session(app.state.engine) as session:
        return _notes(session)


def test_each_kind_of_route_runs_its_transaction_the_way_it_can(
    bare: FastAPI, backend: str
) -> None:
    with TestClient(bare) as client:
        read = client.get("/async/read").json()
        write = client.post("/async/notes/a").json()
        mixed = client.get("/async/with-session").json()
        assert client.get("/sync/read").json() == {"notes": ["a"]}
    if backend == "postgres":
        # psycopg's async connection: the service code ran in a greenlet on the loop's thread.
        assert read == {"mode": "async", "on_loop_thread": True}
        assert write["mode"] == "async"
    else:
        # A SQLite read never waits for a lock in WAL mode: inline on the loop. A write's
        # BEGIN IMMEDIATE can wait for the busy timeout: in a worker thread.
        assert read == {"mode": "inline", "on_loop_thread": True}
        assert write["mode"] == "thread"
    assert write["seen"] == ["a"]
    # A route that also asks for a sync Session gets one transaction, run in threads.
    assert mixed == {"mode": "thread", "same": True}


def test_an_async_route_that_raises_leaves_nothing_and_runs_its_after_rollback_once(
    bare: FastAPI,
) -> None:
    with TestClient(bare, raise_server_exceptions=False) as client:
        assert client.post("/async/notes/kept").status_code == 200
        assert client.post("/async/notes/boom").status_code == 500
    assert _stored(bare) == ["kept"]
    assert bare.state.ran == ["after boom"]


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_row_level_security_sees_the_caller_on_the_async_connection(
    db: Database, make_user: Any, tmp_path: Path
) -> None:
    token = make_user("loop-viewer", "viewer")
    # One pooled connection, so the second request below gets the first one's back.
    engine = create_db_engine(db.url, pool_size=1, max_overflow=0)
    app = create_app(Settings(database_url=db.url, home=str(tmp_path)), engine=engine)

    @app.get("/probe/whoami")
    async def whoami(db: RequestDbDep, _: AnyUser) -> dict[str, Any]:
        def ask(session: Session) -> dict[str, Any]:
            row = session.execute(
                sa.text(
                    "SELECT current_user, current_setting('shipboard.role'), "
                    "current_setting('shipboard.user_id')"
                )
            ).one()
            return {"user": row[0], "role": row[1], "user_id": row[2]}

        return {"mode": db.mode, **await db.run(ask)}

    @app.get("/probe/raw")
    async def raw(db: RequestDbDep) -> dict[str, Any]:
        return {"user": await db.run(lambda s: s.scalar(sa.text("SELECT current_user")))}

    try:
        with TestClient(app) as client:
            answer = client.get("/probe/whoami", headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {
                "mode": "async",
                "user": "shipboard_app",
                "role": "viewer",
                "user_id": "loop-viewer",
            }
            # The role and identity were SET LOCAL: the pooled connection came back as itself.
            assert client.get("/probe/raw").json() == {"user": "postgres"}
    finally:
        app.state.engine.dispose()


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_transaction_waiting_for_an_advisory_lock_does_not_stall_the_loop(
    bare: FastAPI,
) -> None:
    """Two requests want the same transaction-level advisory lock. The second waits in
    PostgreSQL while the first, on the same event loop, sleeps and then commits: were the
    wait blocking the loop, the first could never finish and both would hang."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    events: list[str] = []

    @bare.post("/lock/{name}")
    async def hold(name: str, db: RequestDbDep) -> dict[str, Any]:
        await db.run(lambda s: s.execute(sa.text("SELECT pg_advisory_xact_lock(4242)")))
        events.append(f"{name} locked")
        await asyncio.sleep(0.3)
        events.append(f"{name} done")
        return {"mode": db.mode}

    with TestClient(bare) as client, ThreadPoolExecutor(2) as pool:
        first = pool.submit(client.post, "/lock/first")
        while "first locked" not in events:
            threading.Event().wait(0.01)
        second = pool.submit(client.post, "/lock/second")
        answers = [first.result(timeout=20), second.result(timeout=20)]
    assert [a.json()["mode"] for a in answers] == ["async", "async"]
    # The lock lasted until the first transaction ended, not its statement.
    assert events == ["first locked", "first done", "second locked", "second done"]
