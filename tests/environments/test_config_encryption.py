"""Credentials in environment config are encrypted at rest (issue 18 item 14).

What the one redaction hides is exactly what is sealed (``core/sealing.py``); a copied database
(the SQLite file and its WAL, PostgreSQL's rows) holds none of it, while the steps, the
healthcheck and the scraper still get the values as written.
"""

from __future__ import annotations

import base64
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.core.crypto import Keyring, generate_key
from shipboard.core.redaction import redact
from shipboard.core.sealing import credentials, seal, under, unseal
from shipboard.models import metadata
from shipboard.monitoring.tasks import Scraper
from tests.support.databases import Database
from tests.support.keyfile import record_key_file_reads, rotate_key_file
from tests.support.live import Clients, free_port, wait_for

DB_PASSWORD = "db-pw-5b1d9e"
STEP_TOKEN = "step-token-77a0c3"
SCRAPE_PASSWORD = "scrape-pw-c41f02"
HEALTH_PASSWORD = "health-pw-90d3aa"
CHANNEL_TOKEN = "chan-token-3e8b61"
PLAINTEXTS = (DB_PASSWORD, STEP_TOKEN, SCRAPE_PASSWORD, HEALTH_PASSWORD, CHANNEL_TOKEN)


# --- the sealing itself -------------------------------------------------------------------------


def test_exactly_what_the_redaction_hides_is_sealed_and_unsealed_back() -> None:
    keyring = Keyring([generate_key().encode()])
    config = {
        "database_url": f"postgresql://app:{DB_PASSWORD}@db:5432/app",
        "resend_api_key": "re_live_1",
        "stripe_publishable_key": "pk_live_public",
        "pipeline": {
            "steps": [{"name": "s", "env": {"API_TOKEN": STEP_TOKEN, "REGION": "eu"}}],
            "healthcheck": {"url": "https://h.example/health"},
        },
        "monitoring": {"scrape": [{"url": f"http://m:{SCRAPE_PASSWORD}@h:9100/metrics"}]},
        "odd/key~name": {"password": 1234},
        "api_rate_limit": 600,
    }
    shown, sealed = seal(config, keyring)
    assert shown == redact(config)
    assert sorted(sealed) == [
        "/database_url",
        "/monitoring/scrape/0/url",
        "/odd~1key~0name/password",
        "/pipeline/steps/0/env/API_TOKEN",
        "/resend_api_key",
    ]
    assert [p for p, _ in credentials(config)] == [
        ("database_url",),
        ("resend_api_key",),
        ("pipeline", "steps", 0, "env", "API_TOKEN"),
        ("monitoring", "scrape", 0, "url"),
        ("odd/key~name", "password"),
    ]
    assert not any(secret in repr((shown, sealed)) for secret in PLAINTEXTS)
    assert unseal(shown, sealed, keyring) == config
    assert shown["database_url"] == "postgresql://app:***@db:5432/app"
    assert under(sealed, ("pipeline",)) == {
        "/steps/0/env/API_TOKEN": sealed["/pipeline/steps/0/env/API_TOKEN"]
    }
    # Nothing to hide, nothing sealed, and no key needed to read it back.
    plain = {"api_rate_limit": 600, "url": "https://h.example/x?page=2"}
    assert seal(plain, keyring) == (plain, {})
    assert unseal(plain, {}, None) == plain
    with pytest.raises(ValueError, match="keyring"):
        unseal(shown, sealed, None)


# --- end to end ---------------------------------------------------------------------------------


class Endpoint:
    """A local HTTP service that records the Authorization header of every request."""

    def __init__(self, body: bytes = b"") -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.authorizations.append(self.headers.get("Authorization", ""))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.authorizations: list[str] = []
        self.port = free_port()
        self.server = HTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, user: str, password: str, path: str) -> str:
        return f"http://{user}:{password}@127.0.0.1:{self.port}{path}"

    def saw(self, user: str, password: str) -> bool:
        wanted = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        return wanted in self.authorizations

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    service = Endpoint(b"# TYPE up gauge\nup 1\n")
    yield service
    service.close()


def _raw_database(db: Database, engine: Engine) -> bytes:
    """Every row of every table as text, and on SQLite the file and its WAL after a checkpoint
    (read by another process, so this one's descriptors do not drop the server's locks)."""
    rows = []
    if db.backend == "sqlite":
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(FULL)")
    with engine.connect() as conn:
        for table in metadata.sorted_tables:
            if db.backend == "postgres":
                query = f"SELECT t::text FROM {table.name} t"
            else:
                query = f"SELECT * FROM {table.name}"
            # Each value in full (a Row's repr shortens long ones).
            rows.extend(str(value) for row in conn.execute(sa.text(query)) for value in row)
    raw = "\n".join(rows).encode()
    if db.backend == "sqlite":
        path = sa.engine.make_url(db.url).database or ""
        files = [f for f in (path, f"{path}-wal") if Path(f).exists()]
        assert f"{path}-wal" in files or len(files) == 1
        raw += subprocess.run(["cat", *files], capture_output=True, check=True).stdout
    return raw


def test_config_credentials_are_encrypted_at_rest_and_still_used(
    clients: Clients, db: Database, engine: Engine, worker: Any, endpoint: Endpoint, tmp_path: Path
) -> None:
    out = tmp_path / "step-saw"
    config = {
        "database_url": f"postgresql://app:{DB_PASSWORD}@db.internal:5432/app",
        "pipeline": {
            "steps": [
                {
                    "name": "ship",
                    "stage": "deploy",
                    "run": f'printf %s "$API_TOKEN" > {out}',
                    "env": {"API_TOKEN": STEP_TOKEN, "REGION": "eu"},
                }
            ],
            "healthcheck": {
                "url": endpoint.url("hc", HEALTH_PASSWORD, "/health"),
                "retries": 0,
            },
        },
        "monitoring": {
            "scrape": [{"url": endpoint.url("prom", SCRAPE_PASSWORD, "/metrics"), "interval_s": 60}]
        },
    }
    with clients.as_role("admin") as admin:
        patched = admin.patch("/api/v1/environments/staging", json={"config": config})
        assert patched.status_code == 200, patched.text
        # Admins wrote it and read it back as written; others read it redacted.
        assert patched.json()["config"]["database_url"] == config["database_url"]
        assert (
            admin.get("/api/v1/environments/staging").json()["config"]["pipeline"]["steps"][0][
                "env"
            ]["API_TOKEN"]
            == STEP_TOKEN
        )
        created = admin.post(
            "/api/v1/notification-channels",
            json={
                "name": "ops",
                "kind": "webhook",
                "config": {"url": f"http://127.0.0.1:9/hook?token={CHANNEL_TOKEN}"},
            },
        )
        assert created.status_code == 201, created.text
    with clients.as_role("viewer") as viewer:
        shown = viewer.get("/api/v1/environments/staging").json()["config"]
    assert shown["database_url"] == "postgresql://app:***@db.internal:5432/app"
    assert shown["pipeline"]["steps"][0]["env"] == {"API_TOKEN": "***", "REGION": "eu"}

    with clients.as_role("deployer") as deployer:
        did = deployer.post(
            "/api/v1/deployments",
            json={"environment": "staging", "version": "1.0.0", "commit_sha": "abcdef1"},
        ).json()["id"]
        detail = wait_for(
            lambda: (
                (d := deployer.get(f"/api/v1/deployments/{did}").json())["status"]
                in ("success", "failed", "rolled_back")
                and d
            ),
            timeout=30,
        )
    assert detail["status"] == "success", detail
    assert out.read_text() == STEP_TOKEN
    assert endpoint.saw("hc", HEALTH_PASSWORD)

    scraper = Scraper(engine, keyring=clients.server.app.state.keyring)
    assert scraper.scrape_due() == 1
    scraper.close()
    assert endpoint.saw("prom", SCRAPE_PASSWORD)

    raw = _raw_database(db, engine)
    assert [secret for secret in PLAINTEXTS if secret.encode() in raw] == []


# --- reading them on the event loop -------------------------------------------------------------


def test_an_admin_read_after_another_process_rotated_the_key_reads_the_key_file_off_the_loop(
    db: Database, engine: Engine, make_user: Any, tmp_path: Path
) -> None:
    """GET /api/v1/environments runs on the event loop; the keyring reads its key file again
    when a value was sealed under a key another process added, and that read must not hold up
    the loop."""
    from fastapi.testclient import TestClient

    from shipboard.app import create_app
    from shipboard.config import Settings

    admin = {"Authorization": f"Bearer {make_user('key-reader', 'admin')}"}
    app = create_app(Settings(database_url=db.url, home=str(tmp_path)))
    reads = record_key_file_reads(app)
    config = {"database_url": f"postgresql://app:{DB_PASSWORD}@db.internal:5432/app"}
    with TestClient(app) as client:
        patched = client.patch(
            "/api/v1/environments/staging", json={"config": config}, headers=admin
        )
        assert patched.status_code == 200, patched.text
        rotated = rotate_key_file(tmp_path, app.state.keyring)
        with engine.begin() as conn:
            sealed = conn.execute(
                sa.text("SELECT config_secrets FROM environments WHERE name = 'staging'")
            ).scalar_one()
            sealed = sealed if isinstance(sealed, dict) else json.loads(sealed)
            conn.execute(
                sa.text("UPDATE environments SET config_secrets = :s WHERE name = 'staging'"),
                {"s": json.dumps({ptr: rotated.rotate(token) for ptr, token in sealed.items()})},
            )
        shown = client.get("/api/v1/environments/staging", headers=admin)
        loop = client.get("/probe/loop-thread").json()
    assert shown.status_code == 200, shown.text
    assert shown.json()["config"]["database_url"] == config["database_url"]
    assert reads
    assert loop not in reads
