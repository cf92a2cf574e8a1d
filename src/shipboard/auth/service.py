"""Users and API tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from shipboard.auth import repository
from shipboard.auth.models import ApiToken, User
from shipboard.auth.schemas import (
    IssuedToken,
    Principal,
    TokenRead,
    UserCreate,
    UserRead,
    UserWithToken,
)
from shipboard.core.errors import Conflict, NotFound, Unauthorized
from shipboard.core.time import utcnow

TOKEN_PREFIX = "shp_"  # noqa: S105 - a public marker, not a secret


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(session: Session, *, data: UserCreate) -> UserWithToken:
    """Create a user and its first API token."""
    if repository.user_by_name(session, data.name) is not None:
        raise Conflict(f"user {data.name!r} already exists")
    now = utcnow()
    user = User(
        id=uuid.uuid4(),
        name=data.name,
        role=data.role,
        disabled=False,
        created_at=now,
        updated_at=now,
    )
    repository.add(session, user)
    issued = _issue_token(session, user=user, expires_at=None, description="created with the user")
    return UserWithToken(user=UserRead.model_validate(user), token=issued.token)


def list_users(session: Session) -> list[UserRead]:
    """All users, by name."""
    return [UserRead.model_validate(u) for u in repository.list_users(session)]


def count_users(session: Session) -> int:
    return repository.count_users(session)


def disable_user(session: Session, *, name: str) -> UserRead:
    """Disable a user: every token of theirs stops working on the next request."""
    user = _require_user(session, name)
    user.disabled = True
    user.updated_at = utcnow()
    session.flush()
    return UserRead.model_validate(user)


def create_token(
    session: Session,
    *,
    user_name: str,
    expires_in: timedelta | None = None,
    description: str | None = None,
) -> IssuedToken:
    """Issue a new API token for a user; the secret is returned once and stored hashed."""
    user = _require_user(session, user_name)
    expires_at = utcnow() + expires_in if expires_in else None
    return _issue_token(session, user=user, expires_at=expires_at, description=description)


def revoke_token(session: Session, *, token_id: uuid.UUID) -> TokenRead:
    """Revoke a token; revoking twice is harmless."""
    token = repository.token_by_id(session, token_id)
    if token is None:
        raise NotFound(f"token {token_id} does not exist")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
    return TokenRead.model_validate(token)


def authenticate_token(session: Session, *, token: str) -> Principal:
    """Resolve a bearer token to its principal, or raise Unauthorized."""
    if not token.startswith(TOKEN_PREFIX):
        raise Unauthorized()
    found = repository.token_with_user(session, hash_token(token))
    if found is None:
        raise Unauthorized()
    row, user = found
    # The lookup is by hash, so this comparison is belt and braces against a hash collision
    # in some future storage change; compare in constant time anyway.
    if not hmac.compare_digest(row.token_hash, hash_token(token)):
        raise Unauthorized()
    now = utcnow()
    if row.revoked_at is not None:
        raise Unauthorized("token has been revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthorized("token has expired")
    if user.disabled:
        raise Unauthorized("user is disabled")
    return Principal(user_id=user.id, name=user.name, role=user.role, token_id=row.id)


def _issue_token(
    session: Session, *, user: User, expires_at: datetime | None, description: str | None
) -> IssuedToken:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        id=uuid.uuid4(),
        user_id=user.id,
        token_hash=hash_token(token),
        prefix=token[:10],
        description=description,
        created_at=utcnow(),
        expires_at=expires_at,
    )
    repository.add(session, row)
    return IssuedToken(token=token, info=TokenRead.model_validate(row))


def _require_user(session: Session, name: str) -> User:
    user = repository.user_by_name(session, name)
    if user is None:
        raise NotFound(f"user {name!r} does not exist")
    return user
