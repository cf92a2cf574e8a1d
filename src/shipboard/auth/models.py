from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.orm import Mapped, mapped_column

from shipboard.core.time import utcnow
from shipboard.core.types import ROLES
from shipboard.db.base import Base, check_in
from shipboard.db.types import GUID, UTCDateTime


class User(Base):
    __tablename__ = "users"
    __table_args__ = (sa.CheckConstraint(check_in("role", ROLES), name="role"),)

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    role: Mapped[str] = mapped_column(sa.Text, nullable=False)
    disabled: Mapped[bool] = mapped_column(sa.Boolean, nullable=False, default=False)
    password_hash: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    # Web sign-in: a Fernet-encrypted TOTP secret (active once enrolled), and the lockout.
    totp_secret: Mapped[str | None] = mapped_column(sa.Text)
    totp_enabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The last time step (unix time // 30) whose code was accepted: a code is good once
    # (RFC 6238 §5.2), so codes of that step and earlier are refused.
    totp_last_step: Mapped[int | None] = mapped_column(sa.BigInteger)
    failed_logins: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, default=0, server_default="0"
    )
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiToken(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (sa.Index("ix_api_tokens_user_id", "user_id"),)

    id: Mapped[uuid.UUID] = mapped_column(GUID, primary_key=True, default=uuid.uuid4)
    user_id: Mapped[uuid.UUID] = mapped_column(
        GUID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    # SHA-256 of the whole token: tokens carry 256 random bits, so a slow hash buys nothing
    # and would cost a hash per request.
    token_hash: Mapped[str] = mapped_column(sa.Text, nullable=False, unique=True)
    prefix: Mapped[str] = mapped_column(sa.Text, nullable=False)
    description: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebSession(Base):
    """A browser session. The cookie holds a random id; only its SHA-256 is stored."""

    __tablename__ = "web_sessions"
    __table_args__ = (sa.Index("ix_web_sessions_user_id", "user_id"),)

    id_hash: Mapped[str] = mapped_column(sa.Text, primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        GUID, sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False
    )
    csrf_token: Mapped[str] = mapped_column(sa.Text, nullable=False)
    # Password accepted, TOTP code still owed: the session may only reach the code form.
    second_factor_pending: Mapped[bool] = mapped_column(sa.Boolean, nullable=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, nullable=False)
    source_ip: Mapped[str | None] = mapped_column(sa.Text)
