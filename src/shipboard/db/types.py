"""Column types that mean the same on PostgreSQL and SQLite.

PostgreSQL gets the spec's native types (UUID, JSONB, TIMESTAMPTZ, NUMERIC); SQLite gets the
nearest equivalent: UUIDs as canonical 36-character text, JSON as text, and timestamps as
fixed-width UTC ISO-8601 text so that text order is time order (keyset pagination relies on it).
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

JSONType = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


class _ExactNumber(TypeDecorator[float]):
    """NUMERIC read back as float, and written exactly.

    psycopg sends a Python float as float8, and PostgreSQL's float8 → numeric cast keeps only 15
    significant digits: 0.30000000000000004 was stored as 0.3, and the largest doubles were
    rounded up past the float range and read back as infinity. Binding the float's shortest
    round-trip text as a Decimal stores exactly the value that was sent.
    """

    impl = sa.Numeric(asdecimal=False)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if isinstance(value, float) and dialect.name == "postgresql" and math.isfinite(value):
            return Decimal(repr(value))
        return value


NumberType = _ExactNumber()


class GUID(TypeDecorator[uuid.UUID]):
    impl = sa.Uuid
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(postgresql.UUID(as_uuid=True))
        return dialect.type_descriptor(sa.CHAR(36))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if not isinstance(value, uuid.UUID):
            value = uuid.UUID(str(value))
        return value if dialect.name == "postgresql" else str(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> uuid.UUID | None:
        if value is None or isinstance(value, uuid.UUID):
            return value
        return uuid.UUID(str(value))


def format_utc(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


class UTCDateTime(TypeDecorator[datetime]):
    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> sa.types.TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(sa.Text())
        return dialect.type_descriptor(sa.DateTime(timezone=True))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            raise ValueError("naive datetime: Shipboard stores timezone-aware UTC times only")
        return format_utc(value) if dialect.name == "sqlite" else value.astimezone(UTC)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        moment: datetime = value
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)


# DDL defaults. The SQLite ones produce exactly what the types above write, so rows inserted by
# hand (or by another tool) sort and parse like rows inserted by Shipboard.
SQLITE_NOW = "(strftime('%Y-%m-%dT%H:%M:%f', 'now') || '000+00:00')"
SQLITE_UUID = (
    "(lower(hex(randomblob(4)) || '-' || hex(randomblob(2)) || '-4' || "
    "substr(hex(randomblob(2)), 2) || '-' || substr('89ab', 1 + (abs(random()) % 4), 1) || "
    "substr(hex(randomblob(2)), 2) || '-' || hex(randomblob(6))))"
)
