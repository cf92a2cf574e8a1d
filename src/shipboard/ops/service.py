"""Instance preparation: what `shipboard serve` does before it answers requests."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.audit.service import AuditContext
from shipboard.auth import service as auth
from shipboard.auth import sessions
from shipboard.auth.schemas import UserCreate
from shipboard.db import migrate
from shipboard.db.engine import is_postgres, system_transaction
from shipboard.db.partitions import ensure_partitions
from shipboard.environments.service import seed_environments

BOOTSTRAP_ADMIN = "admin"
PREPARE_LOCK = 0x5B1B0A51


@dataclass
class Prepared:
    seeded: list[str]
    admin_token: str | None
    admin_password: str | None = None


def prepare_instance(engine: Engine, url: str) -> Prepared:
    """Migrate, make sure partitions exist ahead, seed; on an empty instance create an admin."""
    migrate.upgrade(url)
    with system_transaction(engine) as session:
        if is_postgres(session):
            # Several processes may start at once (docs/scaling.md): one seeds and creates the
            # admin, the others wait here and then find it done.
            session.execute(sa.select(sa.func.pg_advisory_xact_lock(PREPARE_LOCK)))
            ensure_partitions(session.connection(), months_ahead=1)
        seeded = seed_environments(session)
        token = None
        if auth.count_users(session) == 0:
            created = auth.create_user(
                session,
                data=UserCreate(name=BOOTSTRAP_ADMIN, role="admin"),
                audit_context=AuditContext(actor="system", actor_role="admin"),
            )
            token = created.token
            # A first sign-in for the web pages, printed once like the token.
            password = secrets.token_urlsafe(12)
            sessions.set_password(
                session,
                name=BOOTSTRAP_ADMIN,
                password=password,
                audit_context=AuditContext(actor="system", actor_role="admin"),
            )
            return Prepared(seeded=seeded, admin_token=token, admin_password=password)
    return Prepared(seeded=seeded, admin_token=token)
