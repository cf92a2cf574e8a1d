"""The `shipboard` command as a user runs it: a real process, a real SQLite file or PostgreSQL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.cli import shipboard
from tests.support.databases import Database
from tests.support.live import LiveServer, free_port


def _serve_on_sqlite(home: Path, port: int) -> subprocess.Popen[str]:
    """``shipboard serve`` on the SQLite file in ``home``, its stderr readable as text."""
    env = {**os.environ, "SHIPBOARD_HOME": str(home)}
    env.pop("SHIPBOARD_DATABASE_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "shipboard", "serve", "--port", str(port)],
        env=env,
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    )


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.parametrize("after", ["API: ", "pipeline worker"])
def test_a_signal_while_serve_starts_stops_it(
    tmp_path: Path, signum: signal.Signals, after: str
) -> None:
    """A signal in the moments before uvicorn takes the signals over (threads starting, the
    event loop not yet running) ends the process: it was once swallowed, and serve ran on."""
    proc = _serve_on_sqlite(tmp_path / "home", free_port())
    try:
        assert proc.stderr is not None
        said = ""
        while after not in said:
            line = proc.stderr.readline()
            assert line, said
            said += line
        proc.send_signal(signum)
        assert proc.wait(timeout=20) in (0, 130, -signum), said
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_second_signal_ends_a_start_that_waits(tmp_path: Path) -> None:
    """A database that accepts the connection and never answers holds start-up for the 10 s
    connect timeout: the first Ctrl-C is noted, the second ends the process at once."""
    import socket

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    url = f"postgresql://postgres@127.0.0.1:{silent.getsockname()[1]}/postgres"
    env = {**os.environ, "SHIPBOARD_HOME": str(tmp_path / "home"), "SHIPBOARD_DATABASE_URL": url}
    proc = subprocess.Popen(
        [sys.executable, "-m", "shipboard", "serve", "--port", str(free_port())],
        env=env,
        stderr=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
    )
    try:
        time.sleep(3)  # imported, and waiting for the database
        assert proc.poll() is None
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        time.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) != 0
        assert time.monotonic() - started < 4
    finally:
        silent.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_on_an_empty_home_migrates_seeds_and_prints_an_admin_token(tmp_path: Path) -> None:
    port = free_port()
    proc = _serve_on_sqlite(tmp_path / "home", port)
    try:
        assert proc.stderr is not None
        printed = ""
        token = None
        deadline = time.monotonic() + 60
        while token is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            printed += line
            found = re.search(r"(shp_[A-Za-z0-9_-]{20,})", line)
            token = found.group(1) if found else None
        assert token, printed
        assert f"http://localhost:{port}" in printed
        assert (tmp_path / "home" / "shipboard.db").exists()
        body = None
        while time.monotonic() < deadline:
            try:
                body = httpx.get(
                    f"http://127.0.0.1:{port}/api/v1/environments",
                    headers={"Authorization": f"Bearer {token}"},
                ).json()
                break
            except httpx.ConnectError:
                time.sleep(0.1)
        assert body is not None
        assert [e["name"] for e in body["items"]] == ["development", "staging", "production"]
        # The printed password signs in to the web pages.
        while "Web:" not in printed and time.monotonic() < deadline:
            printed += proc.stderr.readline()
        password = re.search(r"sign in as 'admin' with password (\S+)", printed)
        assert password, printed
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as browser:
            form = browser.get("/login").text
            csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
            assert csrf
            signed = browser.post(
                "/login",
                data={
                    "username": "admin",
                    "password": password.group(1),
                    "csrf_token": csrf.group(1),
                },
            )
            assert signed.status_code == 303, signed.text
            assert browser.get("/").status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)

    # A second start finds the instance prepared: no new admin, no token printed.
    proc = _serve_on_sqlite(tmp_path / "home", port)
    try:
        assert proc.stderr is not None
        lines = [proc.stderr.readline() for _ in range(4)]
        assert not any("shp_" in line for line in lines), lines
        assert not any("with password" in line for line in lines), lines
        assert any("shipboard tokens create admin" in line for line in lines), lines
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)


def test_users_create_json_token_works_against_the_api(db: Database, server: LiveServer) -> None:
    env = {"SHIPBOARD_DATABASE_URL": db.url}
    result = shipboard("users", "create", "carol", "--role", "deployer", "--json", env=env)
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    assert created["user"]["name"] == "carol"
    assert created["user"]["role"] == "deployer"
    assert created["token"].startswith("shp_")
    me = httpx.get(
        f"{server.base_url}/api/v1/me", headers={"Authorization": f"Bearer {created['token']}"}
    ).json()
    assert me["role"] == "deployer"


def test_token_is_stored_only_as_a_hash(db: Database) -> None:
    env = {"SHIPBOARD_DATABASE_URL": db.url}
    token = json.loads(
        shipboard("users", "create", "dave", "--role", "viewer", "--json", env=env).stdout
    )["token"]
    engine = db.engine()
    try:
        import sqlalchemy as sa

        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT token_hash, prefix FROM api_tokens")).all()
    finally:
        engine.dispose()
    assert rows
    assert all(token not in (h, p) and token[4:] not in h for h, p in rows)


def test_duplicate_user_and_bad_role_are_clear_errors(db: Database) -> None:
    env = {"SHIPBOARD_DATABASE_URL": db.url}
    assert shipboard("users", "create", "erin", "--role", "viewer", env=env).returncode == 0
    again = shipboard("users", "create", "erin", "--role", "viewer", env=env)
    assert again.returncode == 1
    assert "already exists" in again.stderr
    assert "Traceback" not in again.stderr
    bad = shipboard("users", "create", "frank", "--role", "root", env=env)
    assert bad.returncode != 0
    assert "Traceback" not in bad.stderr


def test_tokens_create_expiring_revoke_and_disable(db: Database, server: LiveServer) -> None:
    env = {"SHIPBOARD_DATABASE_URL": db.url}
    assert shipboard("users", "create", "gina", "--role", "viewer", env=env).returncode == 0
    issued = json.loads(
        shipboard("tokens", "create", "gina", "--expires-in", "30d", "--json", env=env).stdout
    )
    assert issued["info"]["expires_at"] is not None

    def status(token: str) -> int:
        return httpx.get(
            f"{server.base_url}/api/v1/me", headers={"Authorization": f"Bearer {token}"}
        ).status_code

    assert status(issued["token"]) == 200
    assert shipboard("tokens", "revoke", issued["info"]["id"], env=env).returncode == 0
    assert status(issued["token"]) == 401

    second = json.loads(shipboard("tokens", "create", "gina", "--json", env=env).stdout)["token"]
    assert status(second) == 200
    assert shipboard("users", "disable", "gina", env=env).returncode == 0
    assert status(second) == 401

    listed = json.loads(shipboard("users", "list", "--json", env=env).stdout)
    assert {u["name"]: u["disabled"] for u in listed}["gina"] is True


@pytest.mark.parametrize("bad", ["3x", "0d", "d"])
def test_tokens_create_rejects_bad_durations(db: Database, bad: str) -> None:
    result = shipboard(
        "tokens", "create", "admin", "--expires-in", bad, env={"SHIPBOARD_DATABASE_URL": db.url}
    )
    assert result.returncode == 2  # usage
    assert "duration" in result.stderr


def test_db_seed_is_idempotent(db: Database) -> None:
    env = {"SHIPBOARD_DATABASE_URL": db.url}
    result = shipboard("db", "seed", env=env)
    assert result.returncode == 0
    assert "exist already" in result.stdout


def test_unreachable_database_is_a_clear_error() -> None:
    result = shipboard(
        "users", "list", env={"SHIPBOARD_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    )
    assert result.returncode == 4  # unreachable
    assert "database unreachable" in result.stderr
    assert "Traceback" not in result.stderr


def test_an_invalid_setting_is_a_usage_error_naming_it(tmp_path: Path) -> None:
    result = shipboard(
        "serve",
        "--port",
        str(free_port()),
        env={"SHIPBOARD_HOME": str(tmp_path), "SHIPBOARD_PUBLIC_URL": "ftp://shipboard.example"},
    )
    assert result.returncode == 2, result.stderr
    assert "SHIPBOARD_PUBLIC_URL" in result.stderr
    assert "http:// or https://" in result.stderr
    assert "internal error" not in result.stderr


def test_serve_creates_its_home_private(tmp_path: Path) -> None:
    """A copied-away home must not be readable by other local users: the directory 0700, the
    database, its -wal/-shm and the key file 0600, whatever the umask of the shell."""
    home = tmp_path / "home"
    port = free_port()
    previous = os.umask(0o022)
    try:
        proc = _serve_on_sqlite(home, port)
    finally:
        os.umask(previous)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            pytest.fail("serve did not become ready")
        modes = {path.name: path.stat().st_mode & 0o777 for path in home.iterdir()}
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert home.stat().st_mode & 0o777 == 0o700
    assert {"shipboard.db", "shipboard.db-wal", "shipboard.db-shm", "secret.key"} <= set(modes)
    assert {name: mode for name, mode in modes.items() if mode & 0o077} == {}
