"""The request's transaction (http/db.py), on a bare app: committed when the route returns,
rolled back when it raises, with the after-rollback work run once the locks are released."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from shipboard.db.engine import create_db_engine
from shipboard.http.db import DbSession


@pytest.fixture
def app(tmp_path: Path) -> FastAPI:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'plumbing.db'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE notes (text TEXT)"))
    app = FastAPI()
    app.state.engine = engine
    app.state.ran: list[str] = []

    @app.post("/notes/{text}")
    def write(text: str, db: DbSession, request: Request) -> dict[str, str]:
        db.execute(sa.text("INSERT INTO notes VALUES (:t)"), {"t": text})
        request.state.after_rollback = [lambda: app.state.ran.append(f"after {text}")]
        if text == "boom":
            raise ValueError("refused after writing")
        return {"stored": text}

    return app


def _notes(app: FastAPI) -> list[str]:
    with app.state.engine.connect() as conn:
        return [row[0] for row in conn.execute(sa.text("SELECT text FROM notes"))]


def test_a_route_that_returns_commits_and_one_that_raises_leaves_nothing(app: FastAPI) -> None:
    client = TestClient(app, raise_server_exceptions=False)
    assert client.post("/notes/kept").json() == {"stored": "kept"}
    assert client.post("/notes/boom").status_code == 500
    assert _notes(app) == ["kept"]
    # The refused request's after-rollback work ran, and only for that one.
    assert app.state.ran == ["after boom"]
