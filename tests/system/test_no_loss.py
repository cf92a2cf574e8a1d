"""Idempotency and no loss on ingest (issue #12, part 4).

- A client whose request times out while the server is still storing the batch retries with the
  same ``Idempotency-Key``: every point is stored exactly once.
- Many concurrent clients ingest for a while, retrying what was not acknowledged under the same
  key; every acknowledged point is in the database, exactly once (counted back by name and tags).

CI runs 20 clients for a few seconds; the ``slow`` variant runs 100 clients for 60 s.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support.live import Clients

RETRYABLE = {409, 429, 503}


def _points(name: str, count: int, **tags: str) -> list[dict[str, Any]]:
    now = datetime.now(UTC).isoformat()
    return [
        {
            "name": name,
            "value": float(i),
            "environment": "staging",
            "timestamp": now,
            "source": "no-loss",
            "tags": {**tags, "i": str(i)},
        }
        for i in range(count)
    ]


def _stored(engine: Engine, name: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                sa.text("SELECT count(*) FROM monitoring_metrics WHERE name = :n"), {"n": name}
            ).scalar_one()
        )


@contextmanager
def _writes_blocked(engine: Engine) -> Iterator[None]:
    """Hold the lock an insert into monitoring_metrics needs, so the server is slower than the
    client: SQLite's write lock, or a PostgreSQL table lock that conflicts with inserts."""
    if engine.dialect.name == "sqlite":
        holder = sqlite3.connect(str(engine.url.database), isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            yield
        finally:
            holder.rollback()
            holder.close()
        return
    with engine.connect() as conn:
        conn.exec_driver_sql("LOCK TABLE monitoring_metrics IN SHARE MODE")
        try:
            yield
        finally:
            conn.rollback()


def _no_rate_limit(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        response = admin.patch(
            "/api/v1/environments/staging",
            json={"limits": {"api_rate_limit": 0}},
            headers={"content-type": "application/merge-patch+json"},
        )
        assert response.status_code == 200, response.text


def _post_until_acknowledged(
    client: httpx.Client, body: dict[str, Any], key: str, *, deadline_s: float = 60
) -> tuple[dict[str, Any], int]:
    """Post until the server acknowledges; returns the answer and how many tries it took."""
    tries = 0
    deadline = time.monotonic() + deadline_s
    while True:
        tries += 1
        try:
            response = client.post("/api/v1/metrics", json=body, headers={"Idempotency-Key": key})
        except httpx.TimeoutException:
            response = None
        if response is not None and response.status_code == 200:
            return dict(response.json()), tries
        if response is not None and response.status_code not in RETRYABLE:
            raise AssertionError(f"{response.status_code}: {response.text}")
        assert time.monotonic() < deadline, "never acknowledged"
        # Back off (honouring Retry-After): retrying at once only deepens an overload.
        after = response.headers.get("retry-after", "") if response is not None else ""
        time.sleep(float(after) if after.isdigit() else min(0.05 * 2**tries, 2.0))


def test_a_retry_after_a_client_timeout_stores_each_point_once(
    clients: Clients, engine: Engine
) -> None:
    _no_rate_limit(clients)
    name = f"retried_{uuid.uuid4().hex[:8]}"
    body = {"metrics": _points(name, 500)}
    key = str(uuid.uuid4())
    token = clients.tokens["service"]
    base = clients.server.base_url
    with _writes_blocked(engine):
        # The server waits for the lock; the client gives up first.
        with pytest.raises(httpx.TimeoutException):
            httpx.post(
                f"{base}/api/v1/metrics",
                json=body,
                headers={"Authorization": f"Bearer {token}", "Idempotency-Key": key},
                timeout=0.5,
            )
        assert _stored(engine, name) == 0
    # The first request now completes on its own; the client retries under the same key.
    with clients.as_role("service") as client:
        answer, _ = _post_until_acknowledged(client, body, key)
        assert answer == {"accepted": 500}
        again, _ = _post_until_acknowledged(client, body, key)
        assert again == {"accepted": 500}
    assert _stored(engine, name) == 500
    # The same key with a different batch is a conflict, not a second store.
    with clients.as_role("service") as client:
        other = client.post(
            "/api/v1/metrics",
            json={"metrics": _points(name, 3)},
            headers={"Idempotency-Key": key},
        )
        assert other.status_code == 409, other.text
    assert _stored(engine, name) == 500


def test_a_retry_while_the_first_attempt_still_runs_stores_once(
    clients: Clients, engine: Engine
) -> None:
    """The retry overtakes the first attempt: both race for the key, one batch is stored."""
    _no_rate_limit(clients)
    name = f"raced_{uuid.uuid4().hex[:8]}"
    body = {"metrics": _points(name, 200)}
    key = str(uuid.uuid4())
    results: list[Any] = []

    def attempt() -> None:
        with clients.as_role("service") as client:
            results.append(_post_until_acknowledged(client, body, key)[0])

    with _writes_blocked(engine):
        threads = [threading.Thread(target=attempt) for _ in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(0.5)
    for thread in threads:
        thread.join(timeout=60)
    assert results == [{"accepted": 200}] * 4
    assert _stored(engine, name) == 200


@dataclass
class Tally:
    acknowledged: dict[int, int] = field(default_factory=dict)
    requests: int = 0
    retries: int = 0
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def _client_loop(clients: Clients, name: str, client_id: int, until: float, tally: Tally) -> None:
    points = 0
    try:
        with clients.as_role("service") as client:
            # Longer than the server may queue a request under load: a client that gives up
            # early and retries adds the same work again (and then nothing is acknowledged).
            client.timeout = httpx.Timeout(60)
            batch = 0
            while time.monotonic() < until:
                body = {"metrics": _points(name, 25, client=str(client_id), batch=str(batch))}
                key = f"{client_id}-{batch}-{name}"
                answer, tries = _post_until_acknowledged(client, body, key, deadline_s=300)
                assert answer == {"accepted": 25}
                points += 25
                batch += 1
                with tally.lock:
                    tally.requests += tries
                    tally.retries += tries - 1
    except Exception as exc:  # noqa: BLE001 - reported by the test, not lost in a thread
        with tally.lock:
            tally.errors.append(f"client {client_id}: {type(exc).__name__}: {exc}")
    with tally.lock:
        tally.acknowledged[client_id] = points


def _ingest_concurrently(clients: Clients, engine: Engine, n_clients: int, seconds: float) -> Tally:
    _no_rate_limit(clients)
    name = f"noloss_{uuid.uuid4().hex[:8]}"
    tally = Tally()
    until = time.monotonic() + seconds
    threads = [
        threading.Thread(target=_client_loop, args=(clients, name, i, until, tally))
        for i in range(n_clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 120)
    assert not tally.errors, tally.errors
    assert len(tally.acknowledged) == n_clients
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT tags FROM monitoring_metrics WHERE name = :n"), {"n": name}
        ).scalars()
        per_client: dict[int, int] = {}
        seen: set[tuple[str, str, str]] = set()
        for raw in rows:
            tags = raw if isinstance(raw, dict) else json.loads(raw)
            point = (tags["client"], tags["batch"], tags["i"])
            assert point not in seen, f"stored twice: {point}"
            seen.add(point)
            per_client[int(tags["client"])] = per_client.get(int(tags["client"]), 0) + 1
    assert per_client == {k: v for k, v in tally.acknowledged.items() if v}, (
        "acknowledged points missing (or unacknowledged ones stored)"
    )
    assert sum(tally.acknowledged.values()) > 0
    return tally


def test_concurrent_clients_lose_no_acknowledged_point(clients: Clients, engine: Engine) -> None:
    tally = _ingest_concurrently(clients, engine, n_clients=20, seconds=4)
    print(f"20 clients, 4 s: {sum(tally.acknowledged.values())} points, {tally.retries} retries")


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_hundred_clients_for_a_minute_lose_no_acknowledged_point(
    clients: Clients, engine: Engine
) -> None:
    tally = _ingest_concurrently(clients, engine, n_clients=100, seconds=60)
    print(f"100 clients, 60 s: {sum(tally.acknowledged.values())} points, {tally.retries} retries")


@pytest.mark.parametrize(
    "path", ["/api/v1/me", "/api/v1/reports/dora?environment=production"], ids=["loop", "thread"]
)
def test_an_exhausted_connection_pool_is_503_with_retry_after(
    db: Any, make_user: Any, tmp_path: Any, path: str
) -> None:
    """Found by the 100-client run: a request that waited pool_timeout for a connection was a
    500 (sqlalchemy's TimeoutError); it is an overload, which clients retry on 503. Routes on
    the event loop use the async engine's pool on PostgreSQL (http/db.py), the others the sync
    engine's: each is held in turn."""
    from fastapi.testclient import TestClient

    from shipboard.app import create_app
    from shipboard.config import Settings
    from shipboard.db.engine import create_db_engine
    from shipboard.http.db import async_engine

    token = make_user("pool-user", "viewer")
    engine = create_db_engine(db.url, pool_size=1, max_overflow=0, pool_timeout=0.2)
    app = create_app(Settings(database_url=db.url, home=str(tmp_path)), engine=engine)

    async def hold_async() -> Any:
        return await async_engine(app).connect()

    try:
        with engine.connect(), TestClient(app) as client:  # the sync pool's one connection
            loop_pool = db.backend == "postgres" and path == "/api/v1/me"
            held = client.portal.call(hold_async) if loop_pool else None  # type: ignore[union-attr]
            started = time.monotonic()
            try:
                response = client.get(path, headers={"Authorization": f"Bearer {token}"})
                # After the pool's own timeout (0.2 s), on either engine, not a default 30 s.
                assert time.monotonic() - started < 5
            finally:
                if held is not None:
                    client.portal.call(held.close)  # type: ignore[union-attr]
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"]
        assert response.headers["content-type"].startswith("application/problem+json")
    finally:
        engine.dispose()
