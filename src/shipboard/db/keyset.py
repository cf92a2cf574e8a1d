"""Keyset pagination over ``(sort column, id)``: stable under inserts, no OFFSET scans."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shipboard.core.errors import InvalidInput
from shipboard.core.pagination import Page, decode_cursor, encode_cursor

SelectT = TypeVar("SelectT", bound="sa.Select[*tuple[Any, ...]]")


def keyset_page(
    session: Session,
    stmt: sa.Select[Any],
    *,
    sort_col: sa.orm.InstrumentedAttribute[Any],
    id_col: sa.orm.InstrumentedAttribute[Any],
    cursor: str | None,
    limit: int,
    descending: bool = True,
    rows: bool = False,
) -> Page[Any]:
    """A page of ``stmt`` ordered by ``(sort_col, id_col)``. With ``rows``, ``stmt`` selects
    columns and the items are plain rows: a read-only list then skips the ORM's identity map and
    attribute instrumentation, which cost more than the query on a 50-row page."""
    ordered = after(stmt, sort_col=sort_col, id_col=id_col, cursor=cursor, descending=descending)
    ordered = ordered.limit(limit + 1)
    items = list(session.execute(ordered) if rows else session.scalars(ordered))
    next_cursor = None
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = encode_cursor(getattr(last, sort_col.key), getattr(last, id_col.key))
    return Page(items=items, next_cursor=next_cursor)


def after(
    stmt: SelectT,
    *,
    sort_col: Any,
    id_col: Any,
    cursor: str | None,
    descending: bool = True,
) -> SelectT:
    """``stmt`` ordered by ``(sort_col, id_col)`` and starting after ``cursor`` (a timestamp
    and a UUID): for lists whose rows are not one entity, which build their own cursor with
    ``encode_cursor`` from the last row they keep."""
    position = decode_cursor(cursor)
    if position is not None:
        try:
            key: Any = datetime.fromisoformat(position.key)
            last_id = uuid.UUID(position.id)
        except ValueError as exc:
            raise InvalidInput(
                "cursor is not one this server issued",
                errors=[{"loc": ["query", "cursor"], "msg": "malformed cursor"}],
            ) from exc
        if descending:
            stmt = stmt.where(sa.or_(sort_col < key, sa.and_(sort_col == key, id_col < last_id)))
        else:
            stmt = stmt.where(sa.or_(sort_col > key, sa.and_(sort_col == key, id_col > last_id)))
    order = (sort_col.desc(), id_col.desc()) if descending else (sort_col.asc(), id_col.asc())
    return stmt.order_by(*order)


def filter_by(
    stmt: sa.Select[Any],
    model: Any,
    filters: Any,
    *,
    equal: tuple[str, ...],
    time_column: str | None = None,
) -> sa.Select[Any]:
    """Equality filters on ``equal`` columns (None means no filter), and ``since`` (inclusive) /
    ``until`` (exclusive) on ``time_column``, read from a filter schema of the same names."""
    for column in equal:
        value = getattr(filters, column)
        if value is not None:
            stmt = stmt.where(getattr(model, column) == value)
    if time_column is not None:
        since, until = getattr(filters, "since", None), getattr(filters, "until", None)
        if since is not None:
            stmt = stmt.where(getattr(model, time_column) >= since)
        if until is not None:
            stmt = stmt.where(getattr(model, time_column) < until)
    return stmt
