"""The audit trail: one event per change, none for refused requests, and nothing rewrites it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from tests.support.databases import Database
from tests.support.live import Clients
from tests.support.problems import assert_problem

MUTATIONS = [
    (
        "PUT",
        "/api/v1/environments/staging/secrets/AUDITED",
        {"value": "s3cret-audit"},
        "secret.create",
    ),
    ("PATCH", "/api/v1/environments/staging", {"features": {"x": True}}, "environment.patch"),
    ("PUT", "/api/v1/environments/staging/features/y", {"enabled": False}, "environment.feature"),
    (
        "PUT",
        "/api/v1/environments/staging",
        {
            "domain": "staging.example",
            "config": {
                "database_url": "postgresql://u:hunter2@db/app",
                "supabase_url": "https://x.supabase.co",
                "supabase_anon_key": "a",
                "clerk_publishable_key": "c",
                "stripe_publishable_key": "s",
                "resend_api_key": "re_secret_value",
                "api_rate_limit": 10,
                "max_file_size_mb": 5,
            },
        },
        "environment.replace",
    ),
]


def _count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(sa.text("SELECT count(*) FROM audit_events")).scalar_one())


@pytest.mark.parametrize(("method", "path", "body", "action"), MUTATIONS)
def test_each_mutating_route_writes_exactly_one_event(
    clients: Clients, engine: Engine, method: str, path: str, body: object, action: str
) -> None:
    before = _count(engine)
    with clients.as_role("admin") as admin:
        response = admin.request(method, path, json=body)
        assert response.status_code == 200, response.text
        events = admin.get("/api/v1/audit", params={"action": action, "limit": 1}).json()["items"]
    assert _count(engine) == before + 1
    (event,) = events
    assert event["actor"] == "admin-user"
    assert event["actor_role"] == "admin"
    assert event["target_type"] == "environment"
    assert event["target_id"] == "staging"
    assert event["source_ip"] == "127.0.0.1"
    assert event["request_id"]
    for secret in ("s3cret-audit", "hunter2", "re_secret_value"):
        assert secret not in str(event)


def test_secret_delete_writes_one_event(clients: Clients, engine: Engine) -> None:
    with clients.as_role("admin") as admin:
        admin.put("/api/v1/environments/staging/secrets/GONE", json={"value": "v"})
        before = _count(engine)
        assert admin.delete("/api/v1/environments/staging/secrets/GONE").status_code == 204
        latest = admin.get("/api/v1/audit", params={"action": "secret.delete", "limit": 1})
        (event,) = latest.json()["items"]
    assert _count(engine) == before + 1
    assert event["details"] == {"key": "GONE"}


def test_refused_requests_write_no_event(clients: Clients, engine: Engine) -> None:
    before = _count(engine)
    with clients.as_role("admin") as admin:
        assert_problem(admin.patch("/api/v1/environments/staging", json={"domain": None}), 422)
    with clients.as_role("viewer") as viewer:
        assert_problem(viewer.patch("/api/v1/environments/staging", json={"features": {}}), 403)
    assert _count(engine) == before


def test_audit_filters_and_pages(clients: Clients) -> None:
    # SQLite keeps earlier tests' events (the table refuses DELETE), so look only from now on.
    start = datetime.now(UTC).isoformat()
    with clients.as_role("admin") as admin:
        for i in range(3):
            admin.put(f"/api/v1/environments/development/features/f{i}", json={"enabled": True})
        first = admin.get(
            "/api/v1/audit", params={"target_id": "development", "limit": 2, "since": start}
        ).json()
        second = admin.get(
            "/api/v1/audit",
            params={
                "target_id": "development",
                "limit": 2,
                "since": start,
                "cursor": first["next_cursor"],
            },
        ).json()
        none = admin.get("/api/v1/audit", params={"actor": "nobody"}).json()
        future = admin.get("/api/v1/audit", params={"since": "2999-01-01T00:00:00Z"}).json()
        assert_problem(admin.get("/api/v1/audit", params={"since": "2026-01-01T00:00:00"}), 422)
    flags = [e["details"]["flag"] for e in first["items"] + second["items"]]
    assert flags == ["f2", "f1", "f0"]
    assert none["items"] == []
    assert future["items"] == []


def test_database_refuses_update_and_delete_of_audit_events(
    clients: Clients, engine: Engine
) -> None:
    with clients.as_role("admin") as admin:
        admin.put("/api/v1/environments/staging/features/z", json={"enabled": True})
    for statement in ("UPDATE audit_events SET actor = 'someone-else'", "DELETE FROM audit_events"):
        with pytest.raises(sa.exc.DBAPIError, match="append-only"), engine.begin() as conn:
            conn.execute(sa.text(statement))
    with engine.connect() as conn:
        actors = set(conn.execute(sa.text("SELECT actor FROM audit_events")).scalars())
    assert "someone-else" not in actors
    assert "admin-user" in actors


def test_cli_token_and_user_changes_are_audited(clients: Clients, db: Database) -> None:
    env = {**os.environ, "SHIPBOARD_DATABASE_URL": db.url}

    def run(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "shipboard", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return result.stdout

    run("users", "create", "audited", "--role", "viewer")
    token_id = json.loads(run("tokens", "create", "audited", "--json"))["info"]["id"]
    run("tokens", "revoke", token_id)
    run("users", "disable", "audited")
    with clients.as_role("admin") as admin:
        actions = {
            e["action"]
            for e in admin.get("/api/v1/audit", params={"limit": 20}).json()["items"]
            if e["actor"].startswith("cli:")
        }
    assert {"user.create", "token.create", "token.revoke", "user.disable"} <= actions


def test_each_deployment_route_writes_exactly_one_event(
    clients: Clients, engine: Engine, make_user: object
) -> None:
    approver = make_user("audit-approver", "deployer")  # type: ignore[operator]
    deploy = {"environment": "development", "version": "1.0.0", "commit_sha": "abcdef1"}

    def one_event(action: str, call: object) -> dict[str, object]:
        before = _count(engine)
        response = call()  # type: ignore[operator]
        assert response.status_code in (200, 201), response.text
        assert _count(engine) == before + 1, action
        with clients.as_role("admin") as admin:
            (event,) = admin.get("/api/v1/audit", params={"action": action, "limit": 1}).json()[
                "items"
            ]
        return dict(event)

    with clients.as_role("deployer") as client:
        first = one_event(
            "deployment.create", lambda: client.post("/api/v1/deployments", json=deploy)
        )
        did = first["target_id"]
        for status in ("building", "deploying", "success"):
            one_event(
                "deployment.status",
                lambda s=status: client.post(
                    f"/api/v1/deployments/{did}/status", json={"status": s}
                ),
            )
        second = client.post("/api/v1/deployments", json={**deploy, "version": "2.0.0"}).json()
        for status in ("building", "deploying", "success"):
            client.post(f"/api/v1/deployments/{second['id']}/status", json={"status": status})
        one_event(
            "deployment.rollback",
            lambda: client.post(f"/api/v1/deployments/{second['id']}/rollback"),
        )
        third = client.post("/api/v1/deployments", json={**deploy, "version": "3.0.0"}).json()
        one_event(
            "deployment.cancel", lambda: client.post(f"/api/v1/deployments/{third['id']}/cancel")
        )
    with clients.as_role("admin") as admin:
        admin.put(
            "/api/v1/environments/development/features/require_approval", json={"enabled": True}
        )
    with clients.as_role("deployer") as client:
        fourth = client.post("/api/v1/deployments", json={**deploy, "version": "4.0.0"}).json()
        fifth = client.post("/api/v1/deployments", json={**deploy, "version": "5.0.0"}).json()
    headers = {"Authorization": f"Bearer {approver}"}
    base = clients.server.base_url
    import httpx

    one_event(
        "deployment.approve",
        lambda: httpx.post(f"{base}/api/v1/deployments/{fourth['id']}/approve", headers=headers),
    )
    event = one_event(
        "deployment.reject",
        lambda: httpx.post(f"{base}/api/v1/deployments/{fifth['id']}/reject", headers=headers),
    )
    assert event["actor"] == "audit-approver"


ACTOR_MAX = 200


def test_failed_anonymous_logins_write_a_normalised_actor(clients: Clients, engine: Engine) -> None:
    """The sign-in form's user name becomes the failed login's actor: control characters (an
    ANSI escape, a newline forging a second line, a bidi override) are removed."""
    from tests.support.web import browser, login

    with browser(clients.server) as client:
        login(client, "ghost\x1b[31m\r\nadmin\u202e\t", "wrong password!")
    with engine.connect() as conn:
        actor, target = conn.execute(
            sa.text(
                "SELECT actor, target_id FROM audit_events WHERE action = 'login.failed' "
                "AND actor LIKE 'ghost%' ORDER BY occurred_at DESC"
            )
        ).one()
    assert actor == target == "ghost[31madmin"


def test_every_audit_actor_is_normalised_and_bounded(engine: Engine) -> None:
    """Any caller (a JWT's subject, a CLI user, a webhook login): the actor is stored without
    control characters and at most ACTOR_MAX characters long."""
    from shipboard.audit import service as audit
    from shipboard.db.engine import system_transaction

    actor = "jwt\x00\x07\u2028\u200f" + "y" * 5000
    with system_transaction(engine) as session:
        audit.record(
            session,
            context=audit.AuditContext(actor=actor, actor_role="viewer"),
            action="test.actor",
            target_id="\x1b]8;;http://x\x07" + "z" * 5000,
        )
    with engine.connect() as conn:
        stored, target = conn.execute(
            sa.text("SELECT actor, target_id FROM audit_events WHERE action = 'test.actor'")
        ).one()
    assert stored == "jwt" + "y" * (ACTOR_MAX - 3)
    assert target == "]8;;http://x" + "z" * (ACTOR_MAX - 12)
