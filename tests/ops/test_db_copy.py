"""`shipboard db copy`: a populated SQLite instance moved into an empty PostgreSQL database,
then served from there with the same deployments, logs and secrets."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

from shipboard.audit.service import AuditContext
from shipboard.core.crypto import generate_key
from shipboard.db import migrate
from shipboard.db.engine import system_transaction
from shipboard.db.partitions import partition_name
from shipboard.environments.service import decrypted_secrets, seed_environments
from shipboard.notifications.delivery import send_due
from shipboard.ops.backup import contents
from shipboard.ops.copy import copy_database
from tests.support.cli import shipboard
from tests.support.databases import DatabaseFactory
from tests.support.live import Clients, LiveServer, Receiver
from tests.support.populate import (
    LAST_MONTH,
    assert_every_table_has_rows,
    digests,
    ok_json,
    populate,
    table_counts,
)
from tests.support.users import role_tokens
from tests.support.webhooks import post_github, webhook_payload

pytestmark = pytest.mark.postgres
KEY = generate_key()
SYSTEM = AuditContext(actor="tests", actor_role="admin")


def _instance(databases: DatabaseFactory, backend: str) -> tuple[Any, LiveServer, Clients]:
    database = databases.new(backend)
    migrate.upgrade(database.url)
    server = LiveServer(database.url, secret_keys=KEY)
    with system_transaction(server.engine) as session:
        seed_environments(session)
        tokens = role_tokens(session)
    server.start()
    return database, server, Clients(server=server, tokens=tokens)


def _served(clients: Clients) -> dict[str, Any]:
    """What the API shows of deployments and their logs."""
    with clients.as_role("viewer") as viewer:
        deployments = ok_json(viewer.get("/api/v1/deployments", params={"limit": 500}))["items"]
        logs = {
            d["id"]: ok_json(viewer.get(f"/api/v1/deployments/{d['id']}/logs"))["items"]
            for d in deployments
        }
    return {"deployments": deployments, "logs": logs}


def test_copy_to_postgres_then_serve_the_same_data(
    databases: DatabaseFactory, tmp_path: Any
) -> None:
    receiver = Receiver()
    source, server, clients = _instance(databases, "sqlite")
    try:
        populate(clients, server.engine, receiver_url=receiver.url)
        counts = assert_every_table_has_rows(server.engine)
        before = _served(clients)
        with system_transaction(server.engine) as session:
            secrets = decrypted_secrets(session, name="staging", keyring=server.app.state.keyring)
    finally:
        server.stop()  # db copy wants the source at rest
    assert secrets == {"DEPLOY_TOKEN": "s3cr3t-value"}
    assert any(d["rollback_from"] for d in before["deployments"])

    target = databases.new("postgres")
    env = {"SHIPBOARD_DATABASE_URL": source.url, "SHIPBOARD_HOME": str(tmp_path)}
    # The URL comes from the environment, so its password would stay out of argv.
    copied = shipboard("db", "copy", "--json", env={**env, "SHIPBOARD_COPY_TO": target.url})
    assert copied.returncode == 0, copied.stderr
    body = json.loads(copied.stdout)
    assert {t: body["tables"][t]["rows"] for t in counts} == counts
    assert digests(target.url) == digests(source.url)
    # Every month the source's time series cover has its partition, holding its rows.
    engine = sa.create_engine(target.url, poolclass=sa.pool.NullPool)
    with engine.connect() as conn:
        partitions = contents.partition_counts(conn)
        assert contents.schema_revision(conn) == migrate.head_revision()
    engine.dispose()
    month = LAST_MONTH.date().replace(day=1)
    for table in ("monitoring_metrics", "deployment_logs", "performance_metrics"):
        assert partitions[partition_name(table, month)] >= 1
    assert partitions["monitoring_metrics_2019_05"] == 1
    assert partitions["monitoring_metrics_default"] == 0

    # A second copy into the same database is refused: it is not empty any more.
    again = shipboard("db", "copy", "--to", target.url, env=env)
    assert again.returncode == 1
    assert "not empty" in again.stderr
    assert table_counts(sa.create_engine(target.url, poolclass=sa.pool.NullPool)) == counts

    # Served from PostgreSQL with the same key: the same answers, and secrets that decrypt.
    copy_server = LiveServer(target.url, secret_keys=KEY)
    copy_server.start()
    try:
        on_postgres = Clients(server=copy_server, tokens=clients.tokens)
        assert _served(on_postgres) == before
        with system_transaction(copy_server.engine) as session:
            keyring = copy_server.app.state.keyring
            assert decrypted_secrets(session, name="staging", keyring=keyring) == secrets
        # The integration's webhook secret decrypts: a signed delivery is accepted.
        status = post_github(
            on_postgres,
            "deployment_status",
            webhook_payload("github/deployment_status.created.payload.json"),
            delivery=str(uuid.uuid4()),
        )
        assert status.status_code == 200, status.text
        # The channel's signing secret decrypts: the receiver gets a payload signed with it.
        with on_postgres.as_role("admin") as admin:
            channels = ok_json(admin.get("/api/v1/notification-channels"))["items"]
            (channel,) = [c for c in channels if c["name"] == "ops-hook"]
            ok_json(admin.post(f"/api/v1/notification-channels/{channel['id']}/test"))
        receiver.requests.clear()
        send_due(copy_server.engine, keyring)
        headers, payload = receiver.requests[-1]
        expected = "sha256=" + hmac.new(b"s3cret", payload, hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["X-Shipboard-Signature"], expected)
    finally:
        copy_server.stop()
        receiver.server.shutdown()


def test_copy_refuses_wrong_sources_and_targets(databases: DatabaseFactory) -> None:
    from shipboard.core.errors import InvalidInput

    sqlite = databases.new("sqlite")
    postgres = databases.new("postgres")
    with pytest.raises(InvalidInput, match="no SQLite database"):
        copy_database(sqlite.url, postgres.url)
    migrate.upgrade(sqlite.url)
    with pytest.raises(InvalidInput, match="postgresql://"):
        copy_database(sqlite.url, sqlite.url)
    with pytest.raises(InvalidInput, match="configured database is not SQLite"):
        copy_database(postgres.url, postgres.url)
    migrate.downgrade(sqlite.url, "-1")
    with pytest.raises(InvalidInput, match="run `shipboard db upgrade` on it first"):
        copy_database(sqlite.url, postgres.url)
