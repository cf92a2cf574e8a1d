"""Key rotation and key checks over every value Shipboard stores encrypted.

Six places hold Fernet tokens: environment secrets, the credentials in environment config and
in deployments' pipeline snapshots (core/sealing.py), notification channel credentials, webhook
integration secrets and users' TOTP secrets. ``stored_values`` is the one list of them, so
rotation and the check can never disagree about what "every secret" means.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from dataclasses import field as attribute
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.auth.models import User
from shipboard.core.crypto import Keyring, KeysUnusable, key_fingerprint
from shipboard.deployments.models import DeploymentRun
from shipboard.environments.models import Environment
from shipboard.environments.validation import stored_mapping
from shipboard.integrations.models import Integration
from shipboard.notifications.models import NotificationChannel


@dataclass(frozen=True)
class StoredValue:
    """One encrypted value: where it lives (never what it is) and how to replace it."""

    table: str
    row: str
    field: str
    token: str
    replace: Callable[[str], None] = attribute(repr=False, compare=False)


@dataclass(frozen=True)
class Undecryptable:
    table: str
    row: str
    field: str


@dataclass
class KeyCheck:
    """What the configured keys can read: values per key (0 = primary) and those none can."""

    total: int = 0
    by_key: dict[str, int] = attribute(default_factory=dict)
    undecryptable: list[Undecryptable] = attribute(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.undecryptable


@dataclass(frozen=True)
class Rotation:
    """The outcome of a rotation: the keys to configure, primary first, and what was rewritten."""

    keys: list[str] = attribute(repr=False)
    reencrypted: dict[str, int]

    @property
    def primary_fingerprint(self) -> str:
        return key_fingerprint(self.keys[0])


def stored_values(session: Session, *, lock: bool = False) -> Iterator[StoredValue]:
    """Every encrypted value in the database. With ``lock``, rows are locked (PostgreSQL) so a
    secret written meanwhile waits for the rotation instead of being overwritten by it."""

    def rows(stmt: Any) -> Any:
        return session.scalars(stmt.with_for_update() if lock else stmt)

    for environment in rows(sa.select(Environment).order_by(Environment.name)):
        for key, entry in sorted(stored_mapping(environment.secrets).items()):
            if isinstance(entry, dict) and isinstance(entry.get("value"), str):
                yield StoredValue(
                    "environments",
                    environment.name,
                    f"secrets.{key}",
                    entry["value"],
                    _environment_writer(environment, key),
                )
        for ptr, token in sorted(stored_mapping(environment.config_secrets).items()):
            yield StoredValue(
                "environments",
                environment.name,
                f"config{ptr}",
                token,
                _sealed_writer(environment, "config_secrets", ptr),
            )
    runs = sa.select(DeploymentRun).where(DeploymentRun.pipeline_secrets.is_not(None))
    for run in rows(runs.order_by(DeploymentRun.deployment_id)):
        for ptr, token in sorted(stored_mapping(run.pipeline_secrets).items()):
            yield StoredValue(
                "deployment_runs",
                str(run.deployment_id),
                f"pipeline{ptr}",
                token,
                _sealed_writer(run, "pipeline_secrets", ptr),
            )
    for channel in rows(sa.select(NotificationChannel).order_by(NotificationChannel.name)):
        for key, token in sorted(stored_mapping(channel.secrets).items()):
            yield StoredValue(
                "notification_channels",
                channel.name,
                f"secrets.{key}",
                token,
                _channel_writer(channel, key),
            )
    for integration in rows(sa.select(Integration).order_by(Integration.kind)):
        yield StoredValue(
            "integrations",
            integration.kind,
            "secret",
            integration.secret,
            _attribute_writer(integration, "secret"),
        )
    for user in rows(sa.select(User).where(User.totp_secret.is_not(None)).order_by(User.name)):
        yield StoredValue(
            "users",
            user.name,
            "totp_secret",
            user.totp_secret,
            _attribute_writer(user, "totp_secret"),
        )


# JSON columns are not tracked for in-place changes: each writer assigns a new dict.
def _environment_writer(environment: Environment, key: str) -> Callable[[str], None]:
    def write(token: str) -> None:
        secrets = dict(stored_mapping(environment.secrets))
        secrets[key] = {**secrets[key], "value": token}
        environment.secrets = secrets

    return write


def _sealed_writer(row: object, column: str, ptr: str) -> Callable[[str], None]:
    def write(token: str) -> None:
        setattr(row, column, {**stored_mapping(getattr(row, column)), ptr: token})

    return write


def _channel_writer(channel: NotificationChannel, key: str) -> Callable[[str], None]:
    def write(token: str) -> None:
        channel.secrets = {**channel.secrets, key: token}

    return write


def _attribute_writer(row: object, name: str) -> Callable[[str], None]:
    def write(token: str) -> None:
        setattr(row, name, token)

    return write


def check_keys(session: Session, *, keyring: Keyring) -> KeyCheck:
    """Try every stored value against the configured keys; report those none decrypts."""
    result = KeyCheck()
    counts: Counter[str] = Counter()
    fingerprints = [key_fingerprint(k) for k in keyring.keys]
    for value in stored_values(session):
        result.total += 1
        index = keyring.key_index(value.token)
        if index is None:
            result.undecryptable.append(Undecryptable(value.table, value.row, value.field))
        else:
            counts[fingerprints[index]] += 1
    result.by_key = {fp: counts[fp] for fp in fingerprints}
    return result


def rotate_key(
    session: Session,
    *,
    keyring: Keyring,
    new_key: str,
    audit_context: AuditContext,
    before_commit: Callable[[list[str]], None] | None = None,
) -> Rotation:
    """Re-encrypt every stored value under ``new_key`` (which becomes the primary; the old keys
    stay after it) in the caller's transaction. Nothing is written unless every value decrypts.

    ``before_commit`` receives the new key list once every value is rewritten and flushed: the
    key file is replaced there, before the commit, because a database committed under a key
    that was never saved anywhere could not be read again, while a saved key whose transaction
    then fails costs nothing (the old keys still follow it)."""
    rotated = keyring.with_primary(new_key)
    values = list(stored_values(session, lock=True))
    unreadable = [v for v in values if keyring.key_index(v.token) is None]
    if unreadable:
        where = ", ".join(f"{v.table}/{v.row}/{v.field}" for v in unreadable[:10])
        raise KeysUnusable(
            f"{len(unreadable)} stored value(s) cannot be decrypted with the configured keys "
            f"({where}); nothing was changed — run `shipboard secrets check`"
        )
    counts: Counter[str] = Counter()
    for value in values:
        value.replace(rotated.rotate(value.token))
        counts[value.table] += 1
    session.flush()
    reencrypted = dict(sorted(counts.items()))
    audit.record(
        session,
        context=audit_context,
        action="secrets.rotate_key",
        target_type="keyring",
        target_id=key_fingerprint(new_key),
        details={
            "reencrypted": reencrypted,
            "keys": len(rotated.keys),
            "key_source": "key file" if keyring.key_file else "SHIPBOARD_SECRET_KEYS",
        },
    )
    session.flush()
    if before_commit is not None:
        before_commit(rotated.keys)
    return Rotation(keys=rotated.keys, reencrypted=reencrypted)
