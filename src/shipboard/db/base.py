"""The declarative base every domain's models share."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "%(table_name)s_%(column_0_N_name)s_key",
    "ck": "%(table_name)s_%(constraint_name)s_check",
    "fk": "%(table_name)s_%(column_0_name)s_fkey",
    "pk": "%(table_name)s_pkey",
}


class Base(DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


def check_in(column: str, values: tuple[str, ...]) -> str:
    """The spec's ``column IN ('a', 'b')`` CHECK text, written the same way on both backends."""
    return f"{column} IN ({', '.join(repr(v) for v in values)})"
