"""Bulk inserts for the hot paths (metric points, log lines), shaped as each driver loads fastest.

The ORM's executemany converts every value of every row through the column types — half the time
of a 10,000-row batch. These statements take values already in the driver's shape: on PostgreSQL
one ``INSERT … SELECT FROM unnest(arrays)`` (the closest to COPY that row-level security allows:
COPY FROM is refused on tables with RLS), the arrays sent in binary (``%(name)b``: psycopg quotes
text arrays with a regular expression per element, which cost more than the insert itself); on
SQLite one executemany in the caller's transaction.
Table and column names come from code, never from input; values are always bound.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Literal

import orjson
from sqlalchemy.orm import Session

from shipboard.db.types import format_utc

Kind = Literal["uuid", "text", "float", "int", "bool", "timestamp", "json"]
_PG_ARRAY = {
    "uuid": "uuid[]",
    "text": "text[]",
    # Through text: float8 → numeric keeps 15 digits; float8 → text is the exact shortest form.
    "float": "float8[]::text[]::numeric[]",
    "int": "int8[]",
    "bool": "bool[]",
    "timestamp": "timestamptz[]",
    "json": "text[]::jsonb[]",
}
_PASS_THROUGH = ("text", "float", "int", "bool")


# The RFC 9562 variant digit for a random hex digit: its top two bits become 10.
_VARIANT = {f"{i:x}": f"{(i & 0x3) | 0x8:x}" for i in range(16)}


def uuid7_strings(n: int) -> list[str]:
    """``n`` time-ordered (version 7, RFC 9562) UUIDs in canonical text form, as both drivers
    take them: the current millisecond, then 74 random bits.

    Time-ordered because a batch of random (v4) keys lands on a random leaf page of the primary
    key's index for every row: on SQLite a 10,000-point batch rewrote ~10,000 pages, 40 MB of
    write-ahead log per request. Keys that start with the time all go to the right-hand edge.
    One ``os.urandom`` call for the batch and string slicing cost a tenth of ``uuid.uuid4()``."""
    stamp = f"{time.time_ns() // 1_000_000:012x}"[-12:]
    raw = os.urandom(10 * n).hex()
    return [
        f"{stamp[:8]}-{stamp[8:]}-7{h[:3]}-{_VARIANT[h[3]]}{h[4:7]}-{h[7:19]}"
        for h in (raw[i : i + 20] for i in range(0, 20 * n, 20))
    ]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind


def _json(value: Any) -> str | None:
    # orjson: json.dumps of each row's tags was a twentieth of a 10,000-point request.
    # OPT_NON_STR_KEYS keeps json.dumps' reading of int keys as their text.
    return None if value is None else orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def _sqlite_value(kind: Kind, value: Any) -> Any:
    if value is None:
        return None
    if kind == "uuid":
        return str(value)
    if kind == "timestamp":
        return format_utc(value)
    if kind == "json":
        return _json(value)
    return value


def _arrays(columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> dict[str, list[Any]]:
    arrays: dict[str, list[Any]] = {}
    for index, column in enumerate(columns):
        values = [row[index] for row in rows]
        if column.kind == "json":
            values = [_json(v) for v in values]
        elif column.kind == "uuid" and len({type(v) for v in values} - {type(None)}) > 1:
            # One element type per array: a batch may mix UUID objects and text ids.
            values = [None if v is None else str(v) for v in values]
        elif column.kind == "timestamp":
            # In UTC, as UTCDateTime binds them: PostgreSQL refuses offsets past ±15:59, which
            # Python (and ISO 8601 input) allows up to ±23:59.
            values = [None if v is None else v.astimezone(UTC) for v in values]
        arrays[f"c{index}"] = values
    return arrays


def _sqlite_rows(columns: Sequence[Column], rows: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
    """Convert column by column (one ``map`` each) rather than value by value through a
    dispatch: on a 20,000-row import this is most of the Python time spent here."""
    converted: list[Any] = []
    for index, column in enumerate(columns):
        values = [row[index] for row in rows]
        if column.kind in _PASS_THROUGH:
            converted.append(values)
        elif column.kind == "uuid":
            converted.append([None if v is None else str(v) for v in values])
        elif column.kind == "timestamp":
            # Batches share a few moments (``now``): format each distinct one once.
            seen: dict[Any, str | None] = {}
            converted.append(
                [
                    seen[v] if v in seen else seen.setdefault(v, _sqlite_value("timestamp", v))
                    for v in values
                ]
            )
        else:
            converted.append([_json(v) for v in values])
    return list(zip(*converted, strict=True))


def update(
    session: Session,
    table: str,
    key: Column,
    columns: Sequence[Column],
    rows: Sequence[Sequence[Any]],
) -> int:
    """Set ``columns`` on the rows whose ``key`` is each row's first value, in one statement
    (rows are ``(key, *values)``)."""
    if not rows:
        return 0
    connection = session.connection()
    every = [key, *columns]
    if connection.dialect.name == "postgresql":
        selects = ", ".join(f"%(c{i})b::{_PG_ARRAY[c.kind]}" for i, c in enumerate(every))
        names = ", ".join(c.name for c in every)
        sets = ", ".join(f"{c.name} = v.{c.name}" for c in columns)
        connection.exec_driver_sql(
            f"UPDATE {table} AS t SET {sets} FROM unnest({selects}) AS v({names}) "
            f"WHERE t.{key.name} = v.{key.name}",
            _arrays(every, rows),
        )
    else:
        sets = ", ".join(f"{c.name} = ?" for c in columns)
        reordered = [(*row[1:], row[0]) for row in _sqlite_rows(every, rows)]
        connection.exec_driver_sql(
            f"UPDATE {table} SET {sets} WHERE {key.name} = ?",
            reordered,
        )
    return len(rows)


def insert(
    session: Session, table: str, columns: Sequence[Column], rows: Sequence[Sequence[Any]]
) -> int:
    """Insert ``rows`` (tuples in ``columns`` order) in one statement, in the session's
    transaction."""
    if not rows:
        return 0
    connection = session.connection()
    names = ", ".join(c.name for c in columns)
    if connection.dialect.name == "postgresql":
        arrays = _arrays(columns, rows)
        selects = ", ".join(f"%(c{i})b::{_PG_ARRAY[c.kind]}" for i, c in enumerate(columns))
        connection.exec_driver_sql(
            f"INSERT INTO {table} ({names}) SELECT * FROM unnest({selects})",
            arrays,
        )
    else:
        converted = _sqlite_rows(columns, rows)
        marks = ", ".join("?" for _ in columns)
        connection.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", converted)
    return len(rows)
