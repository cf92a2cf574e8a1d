from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from shipboard.core.types import Role

UserName = str


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
    role: Role


class UserRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    role: Role
    disabled: bool
    created_at: datetime


class TokenRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    user_id: uuid.UUID
    prefix: str
    description: str | None = None
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None


class IssuedToken(BaseModel):
    """A token as shown once, at creation: the secret itself is never stored."""

    token: str
    info: TokenRead


class UserWithToken(BaseModel):
    user: UserRead
    token: str


class Principal(BaseModel):
    """Who is calling: resolved from a token on every request."""

    user_id: uuid.UUID
    name: str
    role: Role
    token_id: uuid.UUID | None = None
