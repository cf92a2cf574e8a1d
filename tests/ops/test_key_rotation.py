"""`shipboard secrets rotate-key` and `secrets check`: every encrypted value, one transaction."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.audit.models import AuditEvent
from shipboard.auth import service as auth
from shipboard.auth import sessions
from shipboard.auth.models import User
from shipboard.auth.schemas import Principal, UserCreate
from shipboard.core.crypto import KEY_FILE_NAME, Keyring, KeysUnusable, generate_key
from shipboard.core.sealing import unseal
from shipboard.db.engine import system_transaction
from shipboard.deployments.models import DeploymentRun
from shipboard.deployments.schemas import DeploymentCreate
from shipboard.deployments.service import create_deployment
from shipboard.environments.models import Environment
from shipboard.environments.service import (
    decrypted_secrets,
    patch_environment,
    plaintext_config,
    set_secret,
)
from shipboard.integrations import service as integrations
from shipboard.integrations.models import Integration
from shipboard.integrations.schemas import IntegrationWrite
from shipboard.notifications import service as notifications
from shipboard.notifications.models import NotificationChannel
from shipboard.notifications.schemas import ChannelCreate
from shipboard.ops.keys import check_keys, rotate_key, stored_values
from tests.support.databases import SYSTEM, Database

PLAINTEXTS = {
    "staging API_TOKEN": "plain-env-staging-1f3a",
    "production DB_PASSWORD": "plain-env-production-77c2",
    "channel secret": "plain-channel-secret-90ab",
    "github secret": "plain-integration-secret-4d4d",
    "staging config database_url": "postgresql://app:plain-config-db-6b6b@db/app",
    "staging config step API_TOKEN": "plain-config-step-8c8c",
}
STAGING_CONFIG = {
    "database_url": PLAINTEXTS["staging config database_url"],
    "pipeline": {
        "steps": [
            {
                "name": "ship",
                "stage": "deploy",
                "run": "true",
                "env": {"API_TOKEN": PLAINTEXTS["staging config step API_TOKEN"]},
            }
        ]
    },
}
ADMIN = Principal(user_id=uuid.uuid4(), name="admin-user", role="admin")


def _populate(engine: Engine, keyring: Keyring) -> str:
    """One value of every encrypted kind; returns the TOTP secret enrolled for a user."""
    with system_transaction(engine) as s:
        set_secret(
            s,
            name="staging",
            key="API_TOKEN",
            value=PLAINTEXTS["staging API_TOKEN"],
            keyring=keyring,
            audit_context=SYSTEM,
        )
        set_secret(
            s,
            name="production",
            key="DB_PASSWORD",
            value=PLAINTEXTS["production DB_PASSWORD"],
            keyring=keyring,
            audit_context=SYSTEM,
        )
        notifications.create_channel(
            s,
            data=ChannelCreate(
                name="ops-hook",
                kind="webhook",
                config={"url": "http://127.0.0.1:9/hook", "secret": PLAINTEXTS["channel secret"]},
            ),
            keyring=keyring,
            audit_context=SYSTEM,
        )
        # Config credentials are sealed, and so is the pipeline snapshot of a deployment.
        patch_environment(
            s,
            name="staging",
            patch={"config": STAGING_CONFIG},
            keyring=keyring,
            audit_context=SYSTEM,
        )
        create_deployment(
            s,
            data=DeploymentCreate(environment="staging", version="1.0.0", commit_sha="abcdef1"),
            caller=ADMIN,
            audit_context=SYSTEM,
        )
        integrations.put_integration(
            s,
            kind="github",
            data=IntegrationWrite(secret=PLAINTEXTS["github secret"]),
            keyring=keyring,
            audit_context=SYSTEM,
        )
        created = auth.create_user(
            s, data=UserCreate(name="totp-user", role="deployer"), audit_context=SYSTEM
        )
        return sessions.start_enrolment(
            s, user_id=created.user.id, keyring=keyring, audit_context=SYSTEM
        )


def _plaintexts(engine: Engine, keyring: Keyring) -> dict[str, str]:
    """Every value decrypted with ``keyring`` (raises KeysUnusable if one does not)."""
    with system_transaction(engine) as s:
        found = {
            f"{env} {key}": value
            for env in ("staging", "production")
            for key, value in decrypted_secrets(s, name=env, keyring=keyring).items()
        }
        channel = s.scalars(sa.select(NotificationChannel)).one()
        found["channel secret"] = keyring.decrypt(channel.secrets["secret"])
        integration = s.get(Integration, "github")
        assert integration is not None
        found["github secret"] = keyring.decrypt(integration.secret)
        user = s.scalars(sa.select(User).where(User.name == "totp-user")).one()
        found["totp"] = keyring.decrypt(user.totp_secret or "")
        staging = s.get(Environment, "staging")
        assert staging is not None
        config = plaintext_config(staging, keyring=keyring)
        found["staging config database_url"] = config["database_url"]
        found["staging config step API_TOKEN"] = config["pipeline"]["steps"][0]["env"]["API_TOKEN"]
        run = s.scalars(sa.select(DeploymentRun)).one()
        pipeline = unseal(run.pipeline, run.pipeline_secrets, keyring)
        assert pipeline["steps"][0]["env"] == STAGING_CONFIG["pipeline"]["steps"][0]["env"]
    return found


def _tokens(engine: Engine) -> dict[tuple[str, str, str], str]:
    with system_transaction(engine) as s:
        return {(v.table, v.row, v.field): v.token for v in stored_values(s)}


def test_after_rotation_the_new_key_alone_decrypts_every_secret(engine: Engine) -> None:
    old = generate_key()
    keyring = Keyring([old.encode()])
    totp = _populate(engine, keyring)
    before = _tokens(engine)
    assert {table for table, _, _ in before} == {
        "deployment_runs",
        "environments",
        "notification_channels",
        "integrations",
        "users",
    }
    new = generate_key()
    with system_transaction(engine) as s:
        rotation = rotate_key(s, keyring=keyring, new_key=new, audit_context=SYSTEM)
    assert rotation.keys == [new, old]
    assert rotation.reencrypted == {
        "deployment_runs": 1,  # the snapshot's step token
        "environments": 4,  # two secrets, the config's database URL and step token
        "integrations": 1,
        "notification_channels": 2,  # the webhook's URL and its signing secret
        "users": 1,
    }
    assert _plaintexts(engine, Keyring([new.encode()])) == {**PLAINTEXTS, "totp": totp}
    after = _tokens(engine)
    assert after.keys() == before.keys()
    assert all(after[k] != before[k] for k in before)
    with system_transaction(engine) as s:
        assert all(Keyring([old.encode()]).key_index(v.token) is None for v in stored_values(s))


def test_a_failure_halfway_through_rotation_leaves_every_value_as_it_was(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = generate_key()
    keyring = Keyring([old.encode()])
    totp = _populate(engine, keyring)
    before = _tokens(engine)
    calls: list[int] = []
    real_rotate = Keyring.rotate

    def rotate_then_crash(self: Keyring, token: str) -> str:
        calls.append(1)
        if len(calls) == len(before):  # the last value: the others are rewritten by now
            raise RuntimeError("power cut")
        return real_rotate(self, token)

    monkeypatch.setattr(Keyring, "rotate", rotate_then_crash)
    saved: list[list[str]] = []
    with pytest.raises(RuntimeError, match="power cut"), system_transaction(engine) as s:
        rotate_key(
            s,
            keyring=keyring,
            new_key=generate_key(),
            audit_context=SYSTEM,
            before_commit=saved.append,
        )
    assert len(calls) == len(before)
    assert saved == []  # the key file would not have been touched
    assert _tokens(engine) == before
    assert _plaintexts(engine, keyring) == {**PLAINTEXTS, "totp": totp}


def _plant_foreign_secret(engine: Engine) -> str:
    """A value encrypted under a key nobody configured (a restored row, a lost key)."""
    token = Keyring([generate_key().encode()]).encrypt("foreign-plaintext-5e5e")
    with system_transaction(engine) as s:
        environment = s.get(Environment, "development")
        assert environment is not None
        environment.secrets = {"LOST": {"value": token, "updated_at": "2026-01-01T00:00:00+00:00"}}
    return token


def test_rotation_refuses_to_start_when_a_value_cannot_be_decrypted(engine: Engine) -> None:
    keyring = Keyring([generate_key().encode()])
    _populate(engine, keyring)
    _plant_foreign_secret(engine)
    before = _tokens(engine)
    with (
        pytest.raises(KeysUnusable, match=r"environments/development/secrets\.LOST"),
        system_transaction(engine) as s,
    ):
        rotate_key(s, keyring=keyring, new_key=generate_key(), audit_context=SYSTEM)
    assert _tokens(engine) == before
    with system_transaction(engine) as s:
        result = check_keys(s, keyring=keyring)
    assert not result.ok
    assert [(u.table, u.row, u.field) for u in result.undecryptable] == [
        ("environments", "development", "secrets.LOST")
    ]


def test_the_rotation_is_audited_without_key_material(engine: Engine) -> None:
    old = generate_key()
    keyring = Keyring([old.encode()])
    _populate(engine, keyring)
    new = generate_key()
    with system_transaction(engine) as s:
        rotate_key(s, keyring=keyring, new_key=new, audit_context=SYSTEM)
    with system_transaction(engine) as s:
        event = s.scalars(
            sa.select(AuditEvent)
            .where(AuditEvent.action == "secrets.rotate_key")
            .order_by(AuditEvent.occurred_at.desc())
        ).first()
        assert event is not None
        recorded = json.dumps([event.actor, event.target_id, event.details], default=str)
    assert event.details is not None
    assert event.details["reencrypted"]["environments"] == 4
    for key in (old, new):
        assert key not in recorded
        assert key[:16] not in recorded


def test_a_key_file_keyring_reads_a_key_another_process_put_first(tmp_path: Path) -> None:
    keyring = Keyring.from_settings(None, tmp_path)
    first = (tmp_path / KEY_FILE_NAME).read_text().strip()
    second = generate_key()
    (tmp_path / KEY_FILE_NAME).write_text(f"{second}\n{first}\n")
    token = Keyring([second.encode()]).encrypt("written after the rotation")
    assert keyring.decrypt(token) == "written after the rotation"
    assert keyring.keys == [second, first]


# --- the commands -----------------------------------------------------------------------------


def _shipboard(*args: str, env: dict[str, str], stdin: str | None = None) -> Any:
    environ = {**os.environ, **env}
    environ.pop("SHIPBOARD_SECRET_KEYS", None)
    environ.update(env)
    return subprocess.run(
        [sys.executable, "-m", "shipboard", *args],
        env=environ,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_rotate_key_replaces_the_key_file_atomically_new_key_first(
    db: Database, engine: Engine, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    keyring = Keyring.from_settings(None, home)
    old = keyring.keys[0]
    totp = _populate(engine, keyring)
    env = {"SHIPBOARD_HOME": str(home), "SHIPBOARD_DATABASE_URL": db.url}
    done = _shipboard("secrets", "rotate-key", env=env)
    assert done.returncode == 0, done.stderr
    path = home / KEY_FILE_NAME
    keys = path.read_text().split()
    assert len(keys) == 2
    assert keys[1] == old
    assert keys[0] != old
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert keys[0] not in done.stdout + done.stderr  # a key file is not echoed
    assert "re-encrypted 9 value(s)" in done.stderr
    assert list(home.iterdir()) == [path]  # no temporary file left behind
    assert _plaintexts(engine, Keyring([keys[0].encode()])) == {**PLAINTEXTS, "totp": totp}
    checked = _shipboard("secrets", "check", "--json", env=env)
    assert checked.returncode == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert report["total"] == 9
    assert report["undecryptable"] == []
    assert list(report["by_key"].values()) == [9, 0]


def test_rotate_key_with_keys_from_the_environment_prints_the_new_list(
    db: Database, engine: Engine, tmp_path: Path
) -> None:
    old = generate_key()
    totp = _populate(engine, Keyring([old.encode()]))
    env = {
        "SHIPBOARD_HOME": str(tmp_path / "home"),
        "SHIPBOARD_DATABASE_URL": db.url,
        "SHIPBOARD_SECRET_KEYS": old,
    }
    done = _shipboard("secrets", "rotate-key", env=env)
    assert done.returncode == 0, done.stderr
    line = done.stdout.strip()
    assert line.startswith("SHIPBOARD_SECRET_KEYS=")
    new, previous = line.removeprefix("SHIPBOARD_SECRET_KEYS=").split(",")
    assert previous == old
    assert not (tmp_path / "home" / KEY_FILE_NAME).exists()
    assert _plaintexts(engine, Keyring([new.encode()])) == {**PLAINTEXTS, "totp": totp}


def test_rotate_key_takes_a_prepared_key_from_stdin(
    db: Database, engine: Engine, tmp_path: Path
) -> None:
    old, prepared = generate_key(), generate_key()
    _populate(engine, Keyring([old.encode()]))
    env = {
        "SHIPBOARD_HOME": str(tmp_path / "home"),
        "SHIPBOARD_DATABASE_URL": db.url,
        # Step one of a rotation without downtime: the new key is already known everywhere.
        "SHIPBOARD_SECRET_KEYS": f"{old},{prepared}",
    }
    done = _shipboard("secrets", "rotate-key", "--key-stdin", env=env, stdin=prepared + "\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"SHIPBOARD_SECRET_KEYS={prepared},{old}"
    refused = _shipboard("secrets", "rotate-key", "--key-stdin", env=env, stdin="not-a-key\n")
    assert refused.returncode == 2
    assert "not-a-key" not in refused.stderr


def test_secrets_check_names_an_undecryptable_value_but_never_shows_it(
    db: Database, engine: Engine, tmp_path: Path
) -> None:
    keyring = Keyring.from_settings(None, tmp_path / "home")
    _populate(engine, keyring)
    token = _plant_foreign_secret(engine)
    env = {"SHIPBOARD_HOME": str(tmp_path / "home"), "SHIPBOARD_DATABASE_URL": db.url}
    checked = _shipboard("secrets", "check", env=env)
    assert checked.returncode == 1, checked.stdout + checked.stderr
    printed = checked.stdout + checked.stderr
    for word in ("environments", "development", "secrets.LOST"):
        assert word in printed
    assert token not in printed
    assert "foreign-plaintext" not in printed
    as_json = json.loads(_shipboard("secrets", "check", "--json", env=env).stdout)
    assert as_json["undecryptable"] == [
        {"table": "environments", "row": "development", "field": "secrets.LOST"}
    ]
    refused = _shipboard("secrets", "rotate-key", env=env)
    assert refused.returncode == 1
    assert "nothing was changed" in refused.stderr
    assert (tmp_path / "home" / KEY_FILE_NAME).read_text().split() == keyring.keys
