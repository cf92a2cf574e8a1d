"""The HTTP surface of the foundation, against a real server on loopback."""

from __future__ import annotations

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support.live import Clients, LiveServer
from tests.support.problems import assert_problem


def test_health_and_readiness(server: LiveServer) -> None:
    assert httpx.get(f"{server.base_url}/healthz").json() == {"status": "ok"}
    assert httpx.get(f"{server.base_url}/readyz").json() == {"status": "ok"}


def test_readyz_is_503_when_the_database_is_unreachable() -> None:
    # Nothing listens on port 1: the app starts, the database never answers.
    live = LiveServer("postgresql://nobody@127.0.0.1:1/none?connect_timeout=2")
    live.start()
    try:
        response = httpx.get(f"{live.base_url}/readyz")
        assert_problem(response, 503)
        assert response.headers["retry-after"]
        # Requests that need the database get a 503 too, never a 500.
        response = httpx.get(
            f"{live.base_url}/api/v1/environments", headers={"Authorization": "Bearer shp_x"}
        )
        assert_problem(response, 503)
    finally:
        live.stop()


def test_openapi_document_lists_the_routes(server: LiveServer) -> None:
    doc = httpx.get(f"{server.base_url}/openapi.json").json()
    assert "/api/v1/environments" in doc["paths"]
    assert "/api/v1/environments/{name}" in doc["paths"]
    assert "/readyz" in doc["paths"]


def test_environments_need_a_token(server: LiveServer) -> None:
    response = httpx.get(f"{server.base_url}/api/v1/environments")
    assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    response = httpx.get(
        f"{server.base_url}/api/v1/environments", headers={"Authorization": "Bearer shp_nope"}
    )
    assert_problem(response, 401)


@pytest.mark.parametrize("role", ["viewer", "deployer", "service", "admin"])
def test_every_role_lists_the_three_seeded_environments(clients: Clients, role: str) -> None:
    with clients.as_role(role) as client:
        body = client.get("/api/v1/environments").json()
    assert [e["name"] for e in body["items"]] == ["development", "staging", "production"]
    assert body["items"][2]["domain"] == "legacyguard.cz"


def test_credentials_in_config_are_redacted_for_non_admins(
    clients: Clients, engine: Engine
) -> None:
    with engine.begin() as conn:
        conn.execute(
            sa.update(sa.table("environments", sa.column("config"), sa.column("name")))
            .where(sa.column("name") == "staging")
            .values(
                config=sa.bindparam(
                    "cfg",
                    type_=sa.JSON().with_variant(sa.dialects.postgresql.JSONB(), "postgresql"),
                )
            ),
            {
                "cfg": {
                    "database_url": "postgresql://app:hunter2@db.internal/app",
                    "resend_api_key": "re_live_abc",
                    "webhook_secret": "whsec_1",
                    "api_rate_limit": 600,
                }
            },
        )
    with clients.as_role("viewer") as client:
        config = client.get("/api/v1/environments/staging").json()["config"]
    assert config == {
        "database_url": "postgresql://app:***@db.internal/app",
        "resend_api_key": "***",
        "webhook_secret": "***",
        "api_rate_limit": 600,
    }
    with clients.as_role("admin") as client:
        config = client.get("/api/v1/environments/staging").json()["config"]
    assert config["resend_api_key"] == "re_live_abc"


def test_unknown_environment_is_404_problem(clients: Clients) -> None:
    with clients.as_role("viewer") as client:
        assert_problem(client.get("/api/v1/environments/qa"), 404)


def test_unknown_route_and_wrong_method_are_problems(clients: Clients) -> None:
    with clients.as_role("admin") as client:
        assert_problem(client.get("/api/v1/nothing-here"), 404)
        assert_problem(client.delete("/api/v1/environments"), 405)


def test_me_returns_the_caller(clients: Clients) -> None:
    with clients.as_role("deployer") as client:
        body = client.get("/api/v1/me").json()
    assert (body["name"], body["role"]) == ("deployer-user", "deployer")
