"""Credentials in environment config, pipeline snapshots and old channels are encrypted at rest.

Environment config held database URLs, step ``env`` tokens and scrape/healthcheck URL passwords
in plaintext (redacted only on read), and so did each deployment's pipeline snapshot; channels
created before their URL and tokens were encrypted still held them in ``config``. Now every value
the one redaction hides is sealed (``core/sealing.py``): the document keeps its redacted form and
``config_secrets`` / ``pipeline_secrets`` hold ``{JSON pointer: Fernet token}``; a channel's
``url``/``token``/``api_token`` move into its encrypted ``secrets``.

The key is the one the server uses: ``SHIPBOARD_SECRET_KEYS``, else ``$SHIPBOARD_HOME/secret.key``.
If a row needs encrypting and neither is there, the migration stops before changing anything
(a key made up here would leave the data readable by nobody else). The downgrade puts the
environment and pipeline credentials back in the clear and drops the columns; channel secrets
stay encrypted (the previous revision already reads them from ``secrets``).

Revision ID: 20261203_0021
Revises: 20261203_0020
Create Date: 2026-12-03
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from shipboard.config import get_settings
from shipboard.core.crypto import KEY_FILE_NAME, Keyring, split_keys
from shipboard.core.redaction import redact
from shipboard.core.sealing import seal, unseal
from shipboard.db.types import GUID, JSONType
from shipboard.notifications.schemas import SECRET_KEYS

revision = "20261203_0021"
down_revision = "20261203_0020"
branch_labels = None
depends_on = None

environments = sa.table(
    "environments",
    sa.column("name", sa.Text()),
    sa.column("config", JSONType),
    sa.column("config_secrets", JSONType),
)
runs = sa.table(
    "deployment_runs",
    sa.column("deployment_id", GUID),
    sa.column("pipeline", JSONType),
    sa.column("pipeline_secrets", JSONType),
)
channels = sa.table(
    "notification_channels",
    sa.column("id", GUID),
    sa.column("config", JSONType),
    sa.column("secrets", JSONType),
)


class NoKeyForMigration(RuntimeError):
    pass


def _keyring() -> Keyring:
    """The server's keys, never new ones: a key made up here would be one nobody else has."""
    settings = get_settings()
    if settings.secret_keys:
        return Keyring(split_keys(settings.secret_keys.encode()))
    path = settings.home / KEY_FILE_NAME
    if path.is_file():
        return Keyring(split_keys(path.read_bytes()), key_file=path)
    raise NoKeyForMigration(
        "migration 20261203_0021 encrypts the credentials stored in plaintext and needs the "
        f"server's key: set SHIPBOARD_SECRET_KEYS or SHIPBOARD_HOME (no {path} found); "
        "nothing was changed"
    )


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _documents_to_seal(conn: sa.Connection, table: Any, key: Any, column: Any) -> list[Any]:
    """(row key, document) of every row whose document holds a credential in the clear."""
    return [
        (row_key, document)
        for row_key, document in conn.execute(sa.select(key, column))
        if isinstance(document, dict) and redact(document) != document
    ]


def _channels_to_encrypt(conn: sa.Connection) -> list[Any]:
    return [
        (channel_id, _mapping(config), _mapping(secrets))
        for channel_id, config, secrets in conn.execute(
            sa.select(channels.c.id, channels.c.config, channels.c.secrets)
        )
        if any(k in SECRET_KEYS for k in _mapping(config))
    ]


def upgrade() -> None:
    conn = op.get_bind()
    # Read everything first and find the key before the first change: all or nothing.
    envs = _documents_to_seal(conn, environments, environments.c.name, environments.c.config)
    snapshots = _documents_to_seal(conn, runs, runs.c.deployment_id, runs.c.pipeline)
    old_channels = _channels_to_encrypt(conn)
    keyring = _keyring() if envs or snapshots or old_channels else None

    op.add_column("environments", sa.Column("config_secrets", JSONType, nullable=True))
    op.add_column("deployment_runs", sa.Column("pipeline_secrets", JSONType, nullable=True))
    if keyring is None:
        return
    for name, config in envs:
        shown, sealed = seal(config, keyring)
        conn.execute(
            environments.update()
            .where(environments.c.name == name)
            .values(config=shown, config_secrets=sealed)
        )
    for deployment_id, pipeline in snapshots:
        shown, sealed = seal(pipeline, keyring)
        conn.execute(
            runs.update()
            .where(runs.c.deployment_id == deployment_id)
            .values(pipeline=shown, pipeline_secrets=sealed)
        )
    for channel_id, config, secrets in old_channels:
        # As notifications.service stores a channel: SECRET_KEYS out of config, encrypted.
        moved = {k: keyring.encrypt(str(v)) for k, v in config.items() if k in SECRET_KEYS and v}
        conn.execute(
            channels.update()
            .where(channels.c.id == channel_id)
            .values(
                config={k: v for k, v in config.items() if k not in SECRET_KEYS},
                secrets={**secrets, **moved},
            )
        )


def downgrade() -> None:
    conn = op.get_bind()
    sealed_envs = [
        (name, config, sealed)
        for name, config, sealed in conn.execute(
            sa.select(environments.c.name, environments.c.config, environments.c.config_secrets)
        )
        if sealed
    ]
    sealed_runs = [
        (deployment_id, pipeline, sealed)
        for deployment_id, pipeline, sealed in conn.execute(
            sa.select(runs.c.deployment_id, runs.c.pipeline, runs.c.pipeline_secrets)
        )
        if sealed
    ]
    keyring = _keyring() if sealed_envs or sealed_runs else None
    for name, config, sealed in sealed_envs:
        conn.execute(
            environments.update()
            .where(environments.c.name == name)
            .values(config=unseal(config, sealed, keyring))
        )
    for deployment_id, pipeline, sealed in sealed_runs:
        conn.execute(
            runs.update()
            .where(runs.c.deployment_id == deployment_id)
            .values(pipeline=unseal(pipeline, sealed, keyring))
        )
    # ALTER TABLE … DROP COLUMN on both backends (SQLite ≥ 3.35): a batch would copy the
    # table, and dropping the old copy trips the foreign keys of the rows that name it.
    op.execute("ALTER TABLE deployment_runs DROP COLUMN pipeline_secrets")
    op.execute("ALTER TABLE environments DROP COLUMN config_secrets")
