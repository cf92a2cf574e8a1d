"""Users and API tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from shipboard.audit import service as audit
from shipboard.audit.service import AuditContext
from shipboard.auth import repository
from shipboard.auth.jwt import JwtClaims
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
from shipboard.core.types import ROLES

TOKEN_PREFIX = "shp_"  # noqa: S105 - a public marker, not a secret


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_user(
    session: Session, *, data: UserCreate, audit_context: AuditContext
) -> UserWithToken:
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
    audit.record(
        session,
        context=audit_context,
        action="user.create",
        target_type="user",
        target_id=user.name,
        details={"role": user.role, "token_id": str(issued.info.id)},
    )
    return UserWithToken(user=UserRead.model_validate(user), token=issued.token)


def list_users(session: Session) -> list[UserRead]:
    """All users, by name."""
    return [UserRead.model_validate(u) for u in repository.list_users(session)]


def count_users(session: Session) -> int:
    return repository.count_users(session)


def disable_user(session: Session, *, name: str, audit_context: AuditContext) -> UserRead:
    """Disable a user: every token of theirs stops working on the next request."""
    user = _require_user(session, name)
    user.disabled = True
    user.updated_at = utcnow()
    session.flush()
    audit.record(
        session, context=audit_context, action="user.disable", target_type="user", target_id=name
    )
    return UserRead.model_validate(user)


def create_token(
    session: Session,
    *,
    user_name: str,
    expires_in: timedelta | None = None,
    description: str | None = None,
    audit_context: AuditContext,
) -> IssuedToken:
    """Issue a new API token for a user; the secret is returned once and stored hashed."""
    user = _require_user(session, user_name)
    expires_at = utcnow() + expires_in if expires_in else None
    issued = _issue_token(session, user=user, expires_at=expires_at, description=description)
    audit.record(
        session,
        context=audit_context,
        action="token.create",
        target_type="token",
        target_id=str(issued.info.id),
        details={
            "user": user.name,
            "expires_at": expires_at.isoformat() if expires_at else None,
            "prefix": issued.info.prefix,
        },
    )
    return issued


def revoke_token(
    session: Session, *, token_id: uuid.UUID, audit_context: AuditContext
) -> TokenRead:
    """Revoke a token; revoking twice is harmless."""
    token = repository.token_by_id(session, token_id)
    if token is None:
        raise NotFound(f"token {token_id} does not exist")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.flush()
        audit.record(
            session,
            context=audit_context,
            action="token.revoke",
            target_type="token",
            target_id=str(token_id),
        )
    return TokenRead.model_validate(token)


def authenticate_token(session: Session, *, token: str) -> Principal:
    """Resolve a bearer token to its principal, or raise Unauthorized."""
    if not token.startswith(TOKEN_PREFIX):
        raise Unauthorized()
    row = repository.token_with_user(session, hash_token(token))
    if row is None:
        raise Unauthorized()
    # The lookup is by hash, so this comparison is belt and braces against a hash collision
    # in some future storage change; compare in constant time anyway.
    if not hmac.compare_digest(row.token_hash, hash_token(token)):
        raise Unauthorized()
    now = utcnow()
    if row.revoked_at is not None:
        raise Unauthorized("token has been revoked")
    if row.expires_at is not None and row.expires_at <= now:
        raise Unauthorized("token has expired")
    if row.disabled:
        raise Unauthorized("user is disabled")
    return Principal(user_id=row.user_id, name=row.name, role=row.role, token_id=row.token_id)


def authenticate_jwt(
    session: Session,
    *,
    claims: JwtClaims,
    erased_as: Callable[[str], list[str]] | None = None,
) -> Principal:
    """A JWT's subject and role; a local user of that name that is disabled is refused, and so
    is a subject whose account was erased (``erased_as`` gives the pseudonyms it would have)."""
    if claims.role not in ROLES:
        raise Unauthorized(f"unknown role {claims.role!r} in token")
    user = repository.user_by_name(session, claims.subject)
    if user is None and erased_as is not None:
        # The name itself is gone from the database; only its keyed hash can recognise it.
        for alias in erased_as(claims.subject):
            erased = repository.user_by_name(session, alias)
            if erased is not None and erased.disabled:
                raise Unauthorized("user is disabled")
    if user is not None and user.disabled:
        raise Unauthorized("user is disabled")
    user_id = user.id if user else uuid.uuid5(uuid.NAMESPACE_URL, f"jwt:{claims.subject}")
    return Principal(user_id=user_id, name=claims.subject, role=claims.role)


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
