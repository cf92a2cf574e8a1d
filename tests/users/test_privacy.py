"""Personal data: `shipboard users export NAME` and `shipboard users erase NAME`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from shipboard.auth import sessions
from shipboard.auth.deps import SESSION_COOKIE
from shipboard.auth.pseudonyms import pseudonym
from shipboard.core.crypto import Keyring, generate_key
from shipboard.core.errors import InvalidInput
from shipboard.db.engine import system_transaction
from shipboard.environments.models import Environment
from shipboard.reports.service import dora_report
from shipboard.security.models import FindingIdentity
from shipboard.users.privacy import Scrubber, erase_user
from tests.support.databases import SYSTEM, Database
from tests.support.live import Clients

COMMIT = "abcdef1234567"


def _shipboard(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shipboard", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _everything_as_text(engine: Engine) -> str:
    """Every row of every table (partitions included), every column rendered as text."""
    inspector = sa.inspect(engine)
    chunks: list[str] = []
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                chunks.append(repr(tuple(row)))
    return "\n".join(chunks)


def _dora(engine: Engine) -> dict[str, Any]:
    now = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)
    with system_transaction(engine) as s:
        return {
            env: dora_report(
                s, environment=env, since=now - timedelta(days=1), until=now + timedelta(days=1)
            )
            for env in ("development", "staging")
        }


def _history(
    clients: Clients, engine: Engine, make_user: Callable[[str, str], str], name: str
) -> dict[str, Any]:
    """A user with a bit of everything: deployments (one failed, one cancelled), log lines, an
    approval, a silence, a triage decision, a metric tag, a browser session, notifications."""
    token = make_user(name, "deployer")
    with system_transaction(engine) as s:
        staging = s.get(Environment, "staging")
        development = s.get(Environment, "development")
        assert staging is not None
        assert development is not None
        staging.features = {"require_approval": True}
        development.config = {**development.config, "notification_channels": ["privacy-hook"]}
    with clients.as_role("admin") as admin:
        created = admin.post(
            "/api/v1/notification-channels",
            json={
                "name": "privacy-hook",
                "kind": "webhook",
                "config": {"url": "http://127.0.0.1:9/x"},
            },
        )
        assert created.status_code == 201, created.text
    mine: list[str] = []
    with httpx.Client(
        base_url=clients.server.base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as erin:
        for status in ("success", "failed", "success"):
            response = erin.post(
                "/api/v1/deployments",
                json={"environment": "development", "version": "1.2.3", "commit_sha": COMMIT},
            )
            assert response.status_code == 201, response.text
            deployment = response.json()["id"]
            mine.append(deployment)
            for step in ("building", "deploying", status):
                body: dict[str, Any] = {"status": step}
                if step == "failed":
                    body["error_message"] = f"smoke test failed; ask {name} or {name}@example.com"
                answer = erin.post(f"/api/v1/deployments/{deployment}/status", json=body)
                assert answer.status_code == 200, answer.text
            erin.post(
                f"/api/v1/deployments/{deployment}/logs",
                json={"logs": [{"level": "info", "message": f"hello from {name}", "source": "ci"}]},
            )
        pending = erin.post(
            "/api/v1/deployments",
            json={"environment": "development", "version": "1.2.4", "commit_sha": COMMIT},
        ).json()["id"]
        mine.append(pending)
        assert erin.post(f"/api/v1/deployments/{pending}/cancel").status_code == 200
        silence = erin.post(
            "/api/v1/silences",
            json={
                "matchers": [{"name": "alertname", "value": "Noise"}],
                "ends_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat(),
                "comment": f"muted by {name} during the migration",
            },
        )
        assert silence.status_code == 201, silence.text
        with clients.as_role("deployer") as someone_else:
            theirs = someone_else.post(
                "/api/v1/deployments",
                json={"environment": "staging", "version": "1.2.3", "commit_sha": COMMIT},
            )
            assert theirs.status_code == 201, theirs.text
        approved = erin.post(f"/api/v1/deployments/{theirs.json()['id']}/approve")
        assert approved.status_code == 200, approved.text
    with clients.as_role("service") as ci:
        pushed = ci.post(
            "/api/v1/metrics",
            json={
                "metrics": [
                    {
                        "name": "logins",
                        "value": 1,
                        "environment": "staging",
                        "source": "app",
                        "tags": {"user": name},
                    }
                ]
            },
        )
        assert pushed.status_code in (200, 201, 202), pushed.text
    with system_transaction(engine) as s:
        s.add(
            FindingIdentity(
                id=uuid.uuid4(),
                environment="staging",
                scan_type="sast",
                tool="bandit",
                fingerprint=uuid.uuid4().hex,
                rule_id="B101",
                status="open",
                first_seen_at=datetime.now(UTC),
                last_seen_at=datetime.now(UTC),
                triage_status="accepted_risk",
                triage_reason=f"{name} says tests only",
                triaged_by=name,
            )
        )
        sessions.set_password(s, name=name, password="a long enough password", audit_context=SYSTEM)
    with system_transaction(engine) as s:
        outcome = sessions.login(
            s,
            name=name,
            password="a long enough password",
            source_ip="10.0.0.9",
            now=datetime.now(UTC),
        )
        assert outcome.ok
    return {"token": token, "deployments": mine, "cookie": outcome.cookie}


@pytest.fixture
def name() -> str:
    return f"erin-{uuid.uuid4().hex[:8]}"


def test_export_holds_the_users_deployments_audit_events_and_no_secrets(
    db: Database,
    clients: Clients,
    engine: Engine,
    make_user: Callable[[str, str], str],
    name: str,
    tmp_path: Path,
) -> None:
    history = _history(clients, engine, make_user, name)
    output = tmp_path / "export.json"
    done = _shipboard(
        "users", "export", name, "--output", str(output), env={"SHIPBOARD_DATABASE_URL": db.url}
    )
    assert done.returncode == 0, done.stderr
    assert oct(output.stat().st_mode & 0o777) == "0o600"
    data = json.loads(output.read_text())
    assert data["user"]["name"] == name
    assert data["user"]["password_set"] is True
    assert {d["id"] for d in data["deployments"]} == set(history["deployments"])
    assert {d["triggered_by"] for d in data["deployments"]} == {name}
    messages = [line["message"] for line in data["deployment_logs"]]
    assert f"hello from {name}" in messages
    # On someone else's deployment (the line goes on to say how its gates were judged again).
    assert any(m.startswith(f"approved by {name};") for m in messages)
    actions = {e["action"] for e in data["audit_events"] if e["actor"] == name}
    assert actions == {
        "deployment.create",
        "deployment.status",
        "deployment.cancel",
        "deployment.approve",
        "silence.create",
        "login.ok",
    }
    assert any(
        e["action"] == "user.create" and e["target_id"] == name for e in data["audit_events"]
    )
    assert [a["approved_by"] for a in data["approvals"]] == [name]
    assert f"cancelled by {name}" in {d["error_message"] for d in data["deployments"]}
    assert [t["triaged_by"] for t in data["triage_decisions"]] == [name]
    assert [s["created_by"] for s in data["silences"]] == [name]
    assert data["web_sessions"][0]["source_ip"] == "10.0.0.9"
    assert len(data["api_tokens"]) == 1
    tables = {m["table"] for m in data["mentions"]}
    assert {"monitoring_metrics", "notification_deliveries"} <= tables
    text = output.read_text()
    for secret in (
        "password_hash",
        "totp_secret",
        "token_hash",
        "id_hash",
        "csrf_token",
        "$argon2",
    ):
        assert secret not in text
    assert history["token"] not in text


def test_erase_leaves_the_name_nowhere_and_the_dora_numbers_as_they_were(
    db: Database,
    clients: Clients,
    engine: Engine,
    make_user: Callable[[str, str], str],
    name: str,
) -> None:
    history = _history(clients, engine, make_user, name)
    with httpx.Client(
        base_url=clients.server.base_url, cookies={SESSION_COOKIE: history["cookie"]}, timeout=30
    ) as browser:
        assert browser.get("/api/v1/me").json()["name"] == name
    dora_before = _dora(engine)
    with engine.connect() as conn:
        trail_before = conn.execute(
            sa.text("SELECT id, occurred_at, action FROM audit_events ORDER BY occurred_at, id")
        ).all()
    assert name in _everything_as_text(engine)
    key = generate_key()
    alias = pseudonym(Keyring([key.encode()]), name)
    assert alias.startswith("user-")
    assert len(alias) == len("user-") + 12

    done = _shipboard(
        "users",
        "erase",
        name,
        "--yes",
        "--json",
        env={"SHIPBOARD_DATABASE_URL": db.url, "SHIPBOARD_SECRET_KEYS": key},
    )
    assert done.returncode == 0, done.stderr
    erased = json.loads(done.stdout)
    assert erased["pseudonym"] == alias
    assert erased["tokens_deleted"] == 1
    assert erased["sessions_deleted"] == 1

    assert name not in _everything_as_text(engine)
    assert _dora(engine) == dora_before
    with clients.as_role("viewer") as viewer:
        listed = viewer.get("/api/v1/deployments", params={"triggered_by": alias}).json()["items"]
    assert {d["id"] for d in listed} == set(history["deployments"])

    # The trail: the same events, in the same order, plus the erasure; still append-only.
    with engine.connect() as conn:
        trail_after = conn.execute(
            sa.text("SELECT id, occurred_at, action FROM audit_events ORDER BY occurred_at, id")
        ).all()
        erasure = conn.execute(
            sa.text(
                "SELECT actor, target_id, details FROM audit_events "
                "WHERE action = 'user.erase' AND target_id = :a"
            ),
            {"a": alias},
        ).one()
    assert trail_after[: len(trail_before)] == trail_before
    assert [row.action for row in trail_after[len(trail_before) :]] == ["user.erase"]
    details = erasure.details if isinstance(erasure.details, dict) else json.loads(erasure.details)
    assert details["pseudonym"] == alias
    assert details["rewritten"]["deployment_configs"] == len(history["deployments"])
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as conn:
        conn.execute(sa.text("UPDATE audit_events SET actor = 'x'"))

    # Signed out everywhere, for good.
    with httpx.Client(base_url=clients.server.base_url, timeout=30) as anonymous:
        me = anonymous.get("/api/v1/me", headers={"Authorization": f"Bearer {history['token']}"})
        assert me.status_code == 401
    with httpx.Client(
        base_url=clients.server.base_url, cookies={SESSION_COOKIE: history["cookie"]}, timeout=30
    ) as browser:
        assert browser.get("/api/v1/me").status_code == 401
    with system_transaction(engine) as s:
        for who in (name, alias):
            assert not sessions.login(
                s,
                name=who,
                password="a long enough password",
                source_ip=None,
                now=datetime.now(UTC),
            ).ok
    with system_transaction(engine) as s:
        user = s.execute(
            sa.text("SELECT disabled, password_hash, totp_secret FROM users WHERE name = :a"),
            {"a": alias},
        ).one()
    assert tuple(user) in ((True, None, None), (1, None, None))

    # The failed sign-in above was audited under the name it tried; a second erasure finds it
    # and gives it the same pseudonym as before.
    again = _shipboard(
        "users",
        "erase",
        name,
        "--yes",
        "--json",
        env={"SHIPBOARD_DATABASE_URL": db.url, "SHIPBOARD_SECRET_KEYS": key},
    )
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout) == {
        "pseudonym": alias,
        "rewritten": {"audit_events": 1},
        "tokens_deleted": 0,
        "sessions_deleted": 0,
    }
    assert name not in _everything_as_text(engine)


def test_erase_refuses_a_name_shipboard_uses_itself(engine: Engine) -> None:
    with (
        system_transaction(engine) as s,
        pytest.raises(InvalidInput, match="role or a system actor"),
    ):
        erase_user(
            s, name="admin", keyring=Keyring([generate_key().encode()]), audit_context=SYSTEM
        )


def test_the_scrubber_replaces_the_name_as_a_word_and_spares_other_names() -> None:
    scrub = Scrubber("erin", "user-0123456789ab", others=["erin.smith", "kerin"])
    assert scrub.text("approved by erin") == "approved by user-0123456789ab"
    assert scrub.text("erin@example.com") == "user-0123456789ab@example.com"
    assert scrub.text("cli:erin") == "cli:user-0123456789ab"
    assert scrub.text("erin.smith and erin") == "erin.smith and user-0123456789ab"
    assert scrub.text("kerin, sterin, erin2") == "kerin, sterin, erin2"
    assert scrub.value({"erin": ["by erin", 3, None]}) == {
        "user-0123456789ab": ["by user-0123456789ab", 3, None]
    }


def test_a_jwt_for_an_erased_name_is_refused(
    db: Database, engine: Engine, make_user: Callable[[str, str], str], name: str
) -> None:
    import jwt as pyjwt

    from tests.support.live import LiveServer

    secret = "privacy-test-hs256-secret-0123456789abcdef"
    live = LiveServer(db.url, jwt_secret=secret)
    live.start()
    try:
        now = int(datetime.now(UTC).timestamp())
        token = pyjwt.encode(
            {"sub": name, "role": "deployer", "iat": now, "exp": now + 300}, secret, "HS256"
        )
        headers = {"Authorization": f"Bearer {token}"}
        make_user(name, "deployer")
        assert httpx.get(f"{live.base_url}/api/v1/me", headers=headers).status_code == 200
        with system_transaction(engine) as s:
            erase_user(s, name=name, keyring=live.app.state.keyring, audit_context=SYSTEM)
        # No local user has the name any more; its pseudonym, disabled, still answers for it.
        assert httpx.get(f"{live.base_url}/api/v1/me", headers=headers).status_code == 401
    finally:
        live.stop()
