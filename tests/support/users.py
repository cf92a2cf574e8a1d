"""Users and their API tokens, made in the database as an operator would."""

from __future__ import annotations

import uuid

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipboard.auth import service as auth
from shipboard.auth.schemas import UserCreate
from shipboard.db.engine import system_transaction
from tests.support.databases import SYSTEM

ROLES = ("viewer", "deployer", "service", "admin")


def role_tokens(session: Session) -> dict[str, str]:
    """One user per role, named ``<role>-user``; their API tokens by role."""
    return {
        role: auth.create_user(
            session, data=UserCreate(name=f"{role}-user", role=role), audit_context=SYSTEM
        ).token
        for role in ROLES
    }


def user_token(engine: Engine, role: str = "admin", name: str | None = None) -> str:
    """A new user of ``role`` (named ``name``, or uniquely); its API token."""
    name = name or f"{role}-{uuid.uuid4().hex[:6]}"
    data = UserCreate(name=name, role=role)  # type: ignore[arg-type]
    with system_transaction(engine) as session:
        return auth.create_user(session, data=data, audit_context=SYSTEM).token
