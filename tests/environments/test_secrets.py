"""Secret values: encrypted at rest, write-only in the API, absent from every log line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.config import Settings
from shipboard.core.crypto import Keyring, KeysUnusable, generate_key
from shipboard.core.logging import configure_logging
from shipboard.db.engine import transaction
from shipboard.environments.service import decrypted_secrets
from tests.support.databases import Database
from tests.support.live import Clients, LiveServer
from tests.support.problems import assert_problem


def _all_rows_as_text(engine: Engine) -> str:
    inspector = sa.inspect(engine)
    chunks = []
    with engine.connect() as conn:
        for table in inspector.get_table_names():
            for row in conn.execute(sa.text(f'SELECT * FROM "{table}"')):
                chunks.append(repr(tuple(row)))
    return "\n".join(chunks)


def _database_files_contain(database: Database, needle: str) -> bool:
    """Scan the SQLite file and its WAL as raw bytes.

    In another process: closing any descriptor of the file in this process would drop the
    POSIX locks the test server's connections hold on it, and that corrupts databases.
    """
    path = Path(sa.engine.make_url(database.url).database or "")
    script = (
        "import sys, pathlib\n"
        "p = pathlib.Path(sys.argv[1])\n"
        "files = [f for f in p.parent.glob(p.name + '*') if f.is_file()]\n"
        "assert files\n"
        "print(any(sys.argv[2].encode() in f.read_bytes() for f in files))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path), needle],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return result.stdout.strip() == "True"


def test_secret_plaintext_is_nowhere(
    clients: Clients, db: Database, engine: Engine, capfd: pytest.CaptureFixture[str]
) -> None:
    configure_logging(Settings(log_level="debug", log_json=True))
    plaintext = f"pl41ntext-{uuid.uuid4().hex}"
    try:
        with clients.as_role("admin") as admin:
            written = admin.put(
                "/api/v1/environments/staging/secrets/DB_PASSWORD", json={"value": plaintext}
            )
            assert written.status_code == 200, written.text
            responses = [
                written,
                admin.get("/api/v1/environments/staging"),
                admin.get("/api/v1/environments"),
                admin.get("/api/v1/environments/staging/secrets"),
                admin.get("/api/v1/audit"),
            ]
        with clients.as_role("viewer") as viewer:
            responses.append(viewer.get("/api/v1/environments/staging"))
            responses.append(viewer.get("/api/v1/environments/staging/secrets"))
    finally:
        configure_logging(Settings(log_level="warning"))
    logs = capfd.readouterr()

    for response in responses:
        assert response.status_code == 200
        assert plaintext not in response.text
    assert responses[1].json()["secrets"] == ["DB_PASSWORD"]
    assert [s["key"] for s in responses[3].json()["items"]] == ["DB_PASSWORD"]
    assert "request_finished" in logs.err  # the log was captured, and it is clean
    assert plaintext not in logs.out + logs.err
    assert plaintext not in _all_rows_as_text(engine)
    if db.backend == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(FULL)")
        assert _database_files_contain(db, "DB_PASSWORD")  # the scan does see stored text
        assert not _database_files_contain(db, plaintext)

    keyring = clients.server.app.state.keyring
    with transaction(engine, write=False) as session:
        assert decrypted_secrets(session, name="staging", keyring=keyring) == {
            "DB_PASSWORD": plaintext
        }


def test_secret_delete_and_not_found(clients: Clients) -> None:
    with clients.as_role("admin") as admin:
        admin.put("/api/v1/environments/staging/secrets/API_TOKEN", json={"value": "v"})
        assert admin.delete("/api/v1/environments/staging/secrets/API_TOKEN").status_code == 204
        assert_problem(admin.delete("/api/v1/environments/staging/secrets/API_TOKEN"), 404)
        assert admin.get("/api/v1/environments/staging/secrets").json()["items"] == []
        assert_problem(admin.put("/api/v1/environments/qa/secrets/X", json={"value": "v"}), 404)


@pytest.mark.parametrize(
    ("key", "body"),
    [("BAD-KEY", {"value": "v"}), ("OK", {"value": ""}), ("OK", {"nope": 1}), ("OK", [1])],
)
def test_bad_secret_writes_are_refused(clients: Clients, key: str, body: object) -> None:
    with clients.as_role("admin") as admin:
        assert_problem(admin.put(f"/api/v1/environments/staging/secrets/{key}", json=body), 422)
        assert admin.get("/api/v1/environments/staging/secrets").json()["items"] == []


def test_second_key_still_reads_values_written_under_the_first(
    db: Database, engine: Engine
) -> None:
    old, new = generate_key(), generate_key()
    first = LiveServer(db.url, secret_keys=old)
    first.start()
    try:
        token = _admin_token(engine)
        response = httpx.put(
            f"{first.base_url}/api/v1/environments/staging/secrets/SIGNING_KEY",
            json={"value": "under-the-old-key"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert response.status_code == 200, response.text
    finally:
        first.stop()
    rotated = Keyring.from_settings(f"{new},{old}", Path("/nonexistent"))
    with transaction(engine, write=False) as session:
        assert decrypted_secrets(session, name="staging", keyring=rotated) == {
            "SIGNING_KEY": "under-the-old-key"
        }
    only_new = Keyring.from_settings(new, Path("/nonexistent"))
    with transaction(engine, write=False) as session, pytest.raises(KeysUnusable, match="decrypt"):
        decrypted_secrets(session, name="staging", keyring=only_new)


def _admin_token(engine: Engine) -> str:
    from shipboard.auth import service as auth
    from shipboard.auth.schemas import UserCreate
    from tests.support.databases import SYSTEM

    with transaction(engine) as session:
        return auth.create_user(
            session,
            data=UserCreate(name=f"adm-{uuid.uuid4().hex[:6]}", role="admin"),
            audit_context=SYSTEM,
        ).token


def test_key_file_is_generated_once_with_mode_0600(tmp_path: Path) -> None:
    first = Keyring.from_settings(None, tmp_path)
    token = first.encrypt("x")
    key_file = tmp_path / "secret.key"
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert Keyring.from_settings(None, tmp_path).decrypt(token) == "x"


def test_bad_configured_key_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(KeysUnusable, match="not a Fernet key"):
        Keyring.from_settings("not-a-key", tmp_path)


def test_production_refuses_to_start_without_keys() -> None:
    with pytest.raises(ValueError, match="SHIPBOARD_SECRET_KEYS"):
        Settings(env="production", secret_keys=None)


def test_cli_secret_set_reads_stdin_not_argv(clients: Clients, engine: Engine) -> None:
    value = f"from-stdin-{uuid.uuid4().hex}"
    env = {
        **os.environ,
        "SHIPBOARD_URL": clients.server.base_url,
        "SHIPBOARD_TOKEN": clients.tokens["admin"],
    }
    result = subprocess.run(
        [sys.executable, "-m", "shipboard", "env", "secret", "set", "staging", "FROM_STDIN"],
        input=value + "\n",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert value not in result.stdout + result.stderr
    keyring = clients.server.app.state.keyring
    with transaction(engine, write=False) as session:
        assert decrypted_secrets(session, name="staging", keyring=keyring)["FROM_STDIN"] == value
    listed = subprocess.run(
        [sys.executable, "-m", "shipboard", "env", "secret", "list", "staging", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert [i["key"] for i in json.loads(listed.stdout)["items"]] == ["FROM_STDIN"]
