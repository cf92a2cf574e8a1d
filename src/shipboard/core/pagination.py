"""Opaque keyset cursors: ``(sort key, id)`` of the last row seen, base64url-encoded JSON."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from shipboard.core.errors import InvalidInput

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class Cursor:
    key: str  # ISO timestamp or plain string sort key
    id: str


@dataclass
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def encode_cursor(key: datetime | str, row_id: uuid.UUID | str) -> str:
    raw = json.dumps([key.isoformat() if isinstance(key, datetime) else key, str(row_id)])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> Cursor | None:
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        key, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(key, str) or not isinstance(row_id, str):
            raise ValueError("cursor fields must be strings")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput(
            "cursor is not one this server issued",
            errors=[{"loc": ["query", "cursor"], "msg": "malformed cursor"}],
        ) from exc
    return Cursor(key=key, id=row_id)


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    if limit < 1 or limit > MAX_LIMIT:
        raise InvalidInput(
            f"limit must be between 1 and {MAX_LIMIT}",
            errors=[{"loc": ["query", "limit"], "msg": f"must be between 1 and {MAX_LIMIT}"}],
        )
    return limit
