"""Web sign-in over HTTP (the browser tests cover the same in Chromium): password, TOTP,
lockout, CSRF, idle timeout, safe redirects, and every attempt audited."""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from sqlalchemy import Engine

from shipboard.auth import sessions, totp
from shipboard.auth.models import WebSession
from shipboard.db.engine import system_transaction
from tests.support.databases import SYSTEM, Database
from tests.support.keyfile import record_key_file_reads, rotate_key_file
from tests.support.live import Clients
from tests.support.web import PASSWORD, browser, csrf_of, login, set_password


def audit_actions(clients: Clients, target: str, since: datetime) -> list[str]:
    """Audit actions on ``target`` since ``since`` (on SQLite the append-only audit table is
    not emptied between tests, so counts must be taken from the test's own start)."""
    with clients.as_role("admin") as admin:
        items = admin.get(
            "/api/v1/audit", params={"target_id": target, "limit": 100, "since": since.isoformat()}
        ).json()["items"]
    return sorted(i["action"] for i in items)


def test_pages_need_a_session_and_redirect_back_after_sign_in(
    clients: Clients, engine: Engine
) -> None:
    started = datetime.now(UTC)
    set_password(engine, "viewer-user")
    with browser(clients.server) as client:
        first = client.get("/deployments")
        assert first.status_code == 303
        assert first.headers["location"] == "/login?next=/deployments"
        signed = login(client, "viewer-user", next_path="/deployments")
        assert signed.status_code == 303
        assert signed.headers["location"] == "/deployments"
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie
        assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
        assert "Secure" not in cookie  # plain HTTP on loopback
        home = client.get("/")
        assert home.status_code == 200
        assert "production" in home.text
        assert "Content-Security-Policy" in home.headers
        # No open redirect through ?next=.
        client.cookies.clear()
        assert login(client, "viewer-user", next_path="//evil.example/").headers["location"] == "/"
    assert "login.ok" in audit_actions(clients, "viewer-user", started)


def test_wrong_password_five_times_locks_the_account(clients: Clients, engine: Engine) -> None:
    started = datetime.now(UTC)
    set_password(engine, "deployer-user")
    with browser(clients.server) as client:
        for _ in range(4):
            failed = login(client, "deployer-user", "wrong password!!")
            assert failed.status_code == 200  # the form again, with the reason
            assert "wrong user name, password or code" in failed.text
        fifth = login(client, "deployer-user", "wrong password!!")
        assert "locked" in fifth.text
        # While locked, even the right password is refused.
        assert "locked" in login(client, "deployer-user").text
        unknown = login(client, "nobody-at-all", "whatever it is")
        assert (
            "set-cookie" not in unknown.headers
            or "shipboard_session" not in unknown.headers["set-cookie"]
        )
        assert "wrong user name, password or code" in unknown.text
    actions = audit_actions(clients, "deployer-user", started)
    assert actions.count("login.failed") == 6
    assert "login.ok" not in actions
    assert audit_actions(clients, "nobody-at-all", started) == ["login.failed"]


def test_totp_enrolment_and_sign_in_with_a_code(clients: Clients, engine: Engine) -> None:
    started = datetime.now(UTC)
    set_password(engine, "admin-user")
    with browser(clients.server) as client:
        login(client, "admin-user")
        account = client.get("/account")
        enrolling = client.post(
            "/account/totp", data={"csrf_token": csrf_of(account), "password": PASSWORD}
        )
        assert enrolling.headers["location"] == "/account"
        page = client.get("/account")
        secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
        assert secret, page.text
        assert "<svg" in page.text
        assert "otpauth://totp/Shipboard%3Aadmin-user?secret=" in page.text
        wrong = client.post(
            "/account/totp/confirm", data={"csrf_token": csrf_of(page), "code": "000000"}
        )
        assert wrong.headers["location"] == "/account?error=wrong+code"
        now = time.time()
        code = totp.code_at(secret.group(1), now)
        client.post("/account/totp/confirm", data={"csrf_token": csrf_of(page), "code": code})
        assert "Enabled since" in client.get("/account").text
        client.post("/logout", data={"csrf_token": csrf_of(client.get("/account"))})
        assert client.get("/").status_code == 303

        step = login(client, "admin-user")
        assert step.headers["location"].startswith("/login/code")
        assert client.get("/").status_code == 303  # half signed in is not signed in
        bad = client.post("/login/code", data={"code": "123456"})
        assert "wrong user name, password or code" in bad.text
        # The next step's code: the enrolment's own was used once and is spent.
        good = client.post("/login/code", data={"code": totp.code_at(secret.group(1), now + 30)})
        assert good.status_code == 303
        assert client.get("/").status_code == 200
    actions = audit_actions(clients, "admin-user", started)
    assert "user.totp_enabled" in actions
    assert actions.count("login.ok") == 2


def test_csrf_is_required_for_forms_and_cookie_api_writes(clients: Clients, engine: Engine) -> None:
    set_password(engine, "admin-user")
    with browser(clients.server) as client:
        login(client, "admin-user")
        page = client.get("/")
        refused = client.post("/logout", data={})
        assert refused.status_code == 403
        assert "CSRF" in refused.text
        # The API accepts the session cookie, and for writes the token in a header.
        body = {"enabled": True}
        path = "/api/v1/environments/staging/features/web_flag"
        assert client.put(path, json=body).status_code == 403
        ok = client.put(path, json=body, headers={"X-CSRF-Token": csrf_of(page)})
        assert ok.status_code == 200, ok.text
        assert client.get("/api/v1/me").json()["name"] == "admin-user"
    # A login form posted without its double-submit cookie is refused.
    with browser(clients.server) as fresh:
        forged = fresh.post(
            "/login", data={"username": "admin-user", "password": PASSWORD, "csrf_token": "x"}
        )
        assert forged.status_code == 403
        assert "session_cookie" not in str(forged.headers.get("set-cookie", ""))


def test_idle_sessions_end(clients: Clients, engine: Engine) -> None:
    set_password(engine, "viewer-user")
    with browser(clients.server) as client:
        login(client, "viewer-user")
        assert client.get("/").status_code == 200
        with system_transaction(engine) as session:
            for row in session.scalars(sa.select(WebSession)):
                row.last_seen_at -= timedelta(minutes=31)
        assert client.get("/").status_code == 303
        assert client.get("/api/v1/me").status_code == 401


def test_roles_apply_to_pages_as_to_the_api(clients: Clients, engine: Engine) -> None:
    set_password(engine, "viewer-user")
    with browser(clients.server) as client:
        login(client, "viewer-user")
        audit = client.get("/audit")
        assert audit.status_code == 403
        assert "text/html" in audit.headers["content-type"]
        missing = client.get("/no-such-page")
        assert missing.status_code == 404
        assert "text/html" in missing.headers["content-type"]


def test_set_password_rejects_short_passwords(engine: Engine) -> None:
    import pytest

    from shipboard.core.errors import InvalidInput

    with pytest.raises(InvalidInput), system_transaction(engine) as session:
        sessions.set_password(session, name="x", password="short", audit_context=SYSTEM)


def _enrol(client: httpx.Client) -> tuple[str, int]:
    """Enrol the signed-in user (password as re-authentication); the secret and the step used."""
    account = client.get("/account")
    started = client.post(
        "/account/totp", data={"csrf_token": csrf_of(account), "password": PASSWORD}
    )
    assert started.headers["location"] == "/account", started.text
    page = client.get("/account")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
    assert secret, page.text
    now = time.time()
    code = totp.code_at(secret.group(1), now)
    confirmed = client.post(
        "/account/totp/confirm", data={"csrf_token": csrf_of(page), "code": code}
    )
    assert confirmed.headers["location"] == "/account"
    return secret.group(1), int(now // totp.STEP_S)


def _last_step(engine: Engine, name: str) -> int | None:
    with engine.connect() as conn:
        value = conn.execute(
            sa.text("SELECT totp_last_step FROM users WHERE name = :n"), {"n": name}
        ).scalar_one()
    return None if value is None else int(value)


def test_a_totp_code_is_accepted_only_once(clients: Clients, engine: Engine) -> None:
    """RFC 6238 §5.2: a code seen once (at enrolment or sign-in) is refused within its window."""
    started = datetime.now(UTC)
    set_password(engine, "deployer-user")
    with browser(clients.server) as client:
        login(client, "deployer-user")
        secret, step = _enrol(client)
        assert _last_step(engine, "deployer-user") == step
        client.post("/logout", data={"csrf_token": csrf_of(client.get("/account"))})
        login(client, "deployer-user")
        # The enrolment's code, still inside its window: refused.
        replayed = client.post("/login/code", data={"code": totp.code_at(secret, step * 30)})
        assert "wrong user name, password or code" in replayed.text
        assert client.get("/").status_code == 303
        # The next step's code (inside the drift window) is new: accepted, and remembered.
        fresh = totp.code_at(secret, (step + 1) * 30)
        assert client.post("/login/code", data={"code": fresh}).status_code == 303
        assert client.get("/").status_code == 200
        assert _last_step(engine, "deployer-user") == step + 1
        client.post("/logout", data={"csrf_token": csrf_of(client.get("/account"))})
        login(client, "deployer-user")
        again = client.post("/login/code", data={"code": fresh})
        assert "wrong user name, password or code" in again.text
        # An earlier step, even unused, lies at or before the last accepted one: refused.
        older = client.post("/login/code", data={"code": totp.code_at(secret, (step - 1) * 30)})
        assert "wrong user name, password or code" in older.text
        assert client.get("/").status_code == 303
    actions = audit_actions(clients, "deployer-user", started)
    assert actions.count("login.failed") == 3


def test_totp_reset_and_removal_need_the_password_or_a_current_code(
    clients: Clients, engine: Engine
) -> None:
    started = datetime.now(UTC)
    set_password(engine, "admin-user")
    with browser(clients.server) as client:
        login(client, "admin-user")
        secret, step = _enrol(client)
        token = csrf_of(client.get("/account"))
        # A stolen session (cookie and CSRF token) alone can neither replace nor remove 2FA.
        for path, data in (
            ("/account/totp", {}),
            ("/account/totp", {"password": "not the password"}),
            ("/account/totp/remove", {}),
            ("/account/totp/remove", {"password": "not the password"}),
            ("/account/totp/remove", {"code": totp.code_at(secret, step * 30)}),  # used
        ):
            refused = client.post(path, data={"csrf_token": token, **data})
            assert refused.status_code == 303
            assert refused.headers["location"] == "/account?error=reauth", (path, data)
            assert "Enabled since" in client.get("/account").text
        # A new authenticator with the password: a new secret, confirmed with a code of its own.
        reset = client.post("/account/totp", data={"csrf_token": token, "password": PASSWORD})
        assert reset.headers["location"] == "/account"
        page = client.get("/account")
        new_secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
        assert new_secret
        assert new_secret.group(1) != secret
        now_step = int(time.time() // totp.STEP_S)
        code = totp.code_at(new_secret.group(1), now_step * 30)
        client.post("/account/totp/confirm", data={"csrf_token": token, "code": code})
        assert "Enabled since" in client.get("/account").text
        # Removal with a current, unused code of the new authenticator.
        removal_code = totp.code_at(new_secret.group(1), (now_step + 1) * 30)
        removed = client.post(
            "/account/totp/remove", data={"csrf_token": token, "code": removal_code}
        )
        assert removed.headers["location"] == "/account"
        assert "Not enabled" in client.get("/account").text
    with engine.connect() as conn:
        row = conn.execute(
            sa.text("SELECT totp_secret, totp_enabled_at FROM users WHERE name = 'admin-user'")
        ).one()
    assert tuple(row) == (None, None)
    actions = audit_actions(clients, "admin-user", started)
    assert actions.count("user.totp_enrolment_started") == 2
    assert actions.count("user.totp_enabled") == 2
    assert actions.count("user.totp_removed") == 1
    # Each wrong password or code counts towards the lockout; a missing one is no guess.
    assert actions.count("login.failed") == 3


def test_the_account_page_decrypts_a_pending_secret_off_the_event_loop(
    db: Database, engine: Engine, make_user: Any, tmp_path: Path
) -> None:
    """/account runs on the event loop; an enrolment's secret, sealed under a key another
    process added, makes the keyring read its key file again, which must not hold up the loop."""
    from fastapi.testclient import TestClient

    from shipboard.app import create_app
    from shipboard.config import Settings

    make_user("enroller", "viewer")
    set_password(engine, "enroller")
    app = create_app(Settings(database_url=db.url, home=str(tmp_path)))
    reads = record_key_file_reads(app)
    with TestClient(app, follow_redirects=False) as client:
        assert login(client, "enroller").status_code == 303
        started = client.post(
            "/account/totp",
            data={"csrf_token": csrf_of(client.get("/account")), "password": PASSWORD},
        )
        assert started.headers["location"] == "/account", started.text
        rotated = rotate_key_file(tmp_path, app.state.keyring)
        with engine.begin() as conn:
            sealed = conn.execute(
                sa.text("SELECT totp_secret FROM users WHERE name = 'enroller'")
            ).scalar_one()
            conn.execute(
                sa.text("UPDATE users SET totp_secret = :s WHERE name = 'enroller'"),
                {"s": rotated.rotate(sealed)},
            )
        page = client.get("/account")
        loop = client.get("/probe/loop-thread").json()
    assert page.status_code == 200, page.text
    assert re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text)
    assert reads
    assert loop not in reads
