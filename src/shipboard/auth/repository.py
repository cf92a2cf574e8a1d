from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.auth.models import ApiToken, User, WebSession


def add(session: Session, row: User | ApiToken) -> None:
    session.add(row)
    session.flush()


def user_by_name(session: Session, name: str) -> User | None:
    return session.scalar(sa.select(User).where(User.name == name))


def user_by_id(session: Session, user_id: uuid.UUID) -> User | None:
    return session.get(User, user_id)


def list_users(session: Session) -> list[User]:
    return list(session.scalars(sa.select(User).order_by(User.name)))


def count_users(session: Session) -> int:
    return session.scalar(sa.select(sa.func.count()).select_from(User)) or 0


def token_by_id(session: Session, token_id: uuid.UUID) -> ApiToken | None:
    return session.get(ApiToken, token_id)


# token_id, token_hash, revoked_at, expires_at, user_id, name, role, disabled
TokenUserRow = sa.Row[uuid.UUID, str, datetime | None, datetime | None, uuid.UUID, str, str, bool]


def _token_with_user_statement() -> sa.Select[Any]:
    tokens, users = ApiToken.__table__, User.__table__
    return (
        sa.select(
            tokens.c.id.label("token_id"),
            tokens.c.token_hash,
            tokens.c.revoked_at,
            tokens.c.expires_at,
            users.c.id.label("user_id"),
            users.c.name,
            users.c.role,
            users.c.disabled,
        )
        .join(users, users.c.id == tokens.c.user_id)
        .where(tokens.c.token_hash == sa.bindparam("token_hash"))
    )


# Built once: this runs on every API request, and building the statement (and loading two ORM
# entities, before) cost more than the lookup itself. Table columns keep it a Core statement,
# which skips the ORM's compile step.
_TOKEN_WITH_USER = _token_with_user_statement()


def token_with_user(session: Session, token_hash: str) -> TokenUserRow | None:
    """What authenticating a bearer token needs, as one plain row."""
    row = session.execute(_TOKEN_WITH_USER, {"token_hash": token_hash}).first()
    return cast("TokenUserRow | None", row)


def claim_totp_step(session: Session, user_id: uuid.UUID, step: int) -> bool:
    """Record ``step`` as the user's last accepted TOTP step, unless it is not newer.

    One conditional UPDATE, so two requests racing with the same code cannot both win: the
    second sees the first's step (PostgreSQL re-checks the row it waited for; SQLite serializes
    writers) and updates nothing.
    """
    result = session.execute(
        sa.update(User)
        .where(
            User.id == user_id,
            sa.or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0) == 1)


# --- browser sessions -------------------------------------------------------------------------


def web_session(session: Session, id_hash: str) -> WebSession | None:
    return session.get(WebSession, id_hash)


def touch_web_session(session: Session, id_hash: str, now: datetime) -> None:
    session.execute(
        sa.update(WebSession).where(WebSession.id_hash == id_hash).values(last_seen_at=now)
    )


def delete_web_session(session: Session, id_hash: str) -> None:
    session.execute(sa.delete(WebSession).where(WebSession.id_hash == id_hash))


def delete_web_sessions_of(session: Session, user_id: uuid.UUID) -> None:
    """Sign a user out everywhere."""
    session.execute(sa.delete(WebSession).where(WebSession.user_id == user_id))
