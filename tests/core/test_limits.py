"""Request budgets per token and environment (429) and body limits (413), and what they leave."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator

import httpx
import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support.databases import IN_CI, Database
from tests.support.live import Clients, LiveServer
from tests.support.problems import assert_problem

REDIS_URL = os.environ.get("SHIPBOARD_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _set_json(engine: Engine, column: str, env: str, value: dict[str, object]) -> None:
    table = sa.table(
        "environments",
        sa.column("name"),
        sa.column(column, sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql")),
    )
    with engine.begin() as conn:
        conn.execute(sa.update(table).where(table.c.name == env).values({column: value}))


def test_environment_budget_gives_429_with_retry_after_and_changes_nothing(
    clients: Clients, engine: Engine
) -> None:
    _set_json(engine, "limits", "staging", {"api_rate_limit": 2})
    with clients.as_role("admin") as admin:
        for flag in ("first", "second"):
            response = admin.put(
                f"/api/v1/environments/staging/features/{flag}", json={"enabled": True}
            )
            assert response.status_code == 200, response.text
        response = admin.put("/api/v1/environments/staging/features/third", json={"enabled": True})
        body = assert_problem(response, 429)
        assert 1 <= int(response.headers["retry-after"]) <= 60
        assert "2 requests a minute" in str(body["detail"])
        features = admin.get("/api/v1/environments/staging").json()["features"]
        # Another environment without a budget is not affected.
        other = admin.put("/api/v1/environments/development/features/x", json={"enabled": True})
    assert "third" not in features
    assert features["second"] is True
    assert other.status_code == 200


def test_budget_is_per_token(clients: Clients, engine: Engine, make_user: object) -> None:
    _set_json(engine, "limits", "staging", {"api_rate_limit": 1})
    second_admin = make_user("second-admin", "admin")  # type: ignore[operator]
    with clients.as_role("admin") as admin:
        assert admin.put(
            "/api/v1/environments/staging/features/a", json={"enabled": True}
        ).is_success
        assert (
            admin.put("/api/v1/environments/staging/features/b", json={"enabled": True}).status_code
            == 429
        )
    response = httpx.put(
        f"{clients.server.base_url}/api/v1/environments/staging/features/c",
        json={"enabled": True},
        headers={"Authorization": f"Bearer {second_admin}"},
    )
    assert response.status_code == 200


@pytest.fixture
def redis_url() -> str:
    try:
        redis.Redis.from_url(REDIS_URL).ping()
    except redis.RedisError as exc:
        if IN_CI:
            pytest.fail(f"Redis at {REDIS_URL} unavailable under CI=true: {exc}")
        pytest.skip(f"Redis at {REDIS_URL} unavailable: {exc}")
    return REDIS_URL


def test_redis_counter_is_shared_by_two_app_instances(
    db: Database, engine: Engine, redis_url: str, make_user: object
) -> None:
    _set_json(engine, "limits", "staging", {"api_rate_limit": 2})
    token = make_user(f"shared-{uuid.uuid4().hex[:6]}", "admin")  # type: ignore[operator]
    headers = {"Authorization": f"Bearer {token}"}
    first, second = LiveServer(db.url, redis_url=redis_url), LiveServer(db.url, redis_url=redis_url)
    first.start()
    second.start()
    try:
        url = "/api/v1/environments/staging/features/{}"
        assert (
            httpx.put(
                first.base_url + url.format("a"), json={"enabled": True}, headers=headers
            ).status_code
            == 200
        )
        assert (
            httpx.put(
                second.base_url + url.format("b"), json={"enabled": True}, headers=headers
            ).status_code
            == 200
        )
        third = httpx.put(first.base_url + url.format("c"), json={"enabled": True}, headers=headers)
        fourth = httpx.put(
            second.base_url + url.format("d"), json={"enabled": True}, headers=headers
        )
    finally:
        first.stop()
        second.stop()
    assert third.status_code == 429
    assert fourth.status_code == 429


def test_upload_larger_than_max_file_size_is_413_and_stores_nothing(
    clients: Clients, engine: Engine
) -> None:
    _set_json(engine, "config", "staging", {"max_file_size_mb": 1})
    big = "x" * (3 * 1024 * 1024 // 2)
    with clients.as_role("admin") as admin:
        response = admin.put("/api/v1/environments/staging/secrets/BIG", json={"value": big})
        assert_problem(response, 413)

        def chunks() -> Iterator[bytes]:
            yield b'{"value": "'
            for _ in range(40):
                yield b"y" * 65536
            yield b'"}'

        streamed = admin.put(
            "/api/v1/environments/staging/secrets/BIG",
            content=chunks(),
            headers={"Content-Type": "application/json"},
        )
        assert_problem(streamed, 413)
        assert admin.get("/api/v1/environments/staging/secrets").json()["items"] == []


def test_413_comes_before_the_body_is_read(clients: Clients, engine: Engine) -> None:
    """Announce 50 MB, send 64 KB, and the answer is already there."""
    _set_json(engine, "config", "staging", {"max_file_size_mb": 1})
    host, port = "127.0.0.1", clients.server.port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(
            (
                "PUT /api/v1/environments/staging/secrets/HUGE HTTP/1.1\r\n"
                f"Host: {host}\r\n"
                f"Authorization: Bearer {clients.tokens['admin']}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {50 * 1024 * 1024}\r\n\r\n"
            ).encode()
        )
        sock.sendall(b"z" * 65536)
        answer = sock.recv(4096).decode(errors="replace")
    assert answer.startswith("HTTP/1.1 413"), answer


def test_global_body_cap_applies_to_every_route(db: Database, make_user: object) -> None:
    token = make_user(f"cap-{uuid.uuid4().hex[:6]}", "admin")  # type: ignore[operator]
    live = LiveServer(db.url, max_request_mb=0.01)
    live.start()
    try:
        response = httpx.patch(
            f"{live.base_url}/api/v1/environments/staging",
            json={"config": {"note": "n" * 20_000}},
            headers={"Authorization": f"Bearer {token}"},
        )
        small = httpx.patch(
            f"{live.base_url}/api/v1/environments/staging",
            json={"config": {"note": "small"}},
            headers={"Authorization": f"Bearer {token}"},
        )
    finally:
        live.stop()
    assert_problem(response, 413)
    assert small.status_code == 200
