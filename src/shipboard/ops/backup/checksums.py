"""Canonical rows and content checksums (pure): the same rows give the same checksum on
SQLite and PostgreSQL, whatever the order or the collation."""

from __future__ import annotations

import decimal
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from datetime import time as clock_time
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from shipboard.db.types import format_utc

_MOD = 1 << 256


@dataclass(frozen=True)
class TableDigest:
    rows: int
    checksum: str


# Normalizing must never round: PostgreSQL's numeric holds more digits than any default context.
_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def canonical_number(value: Any) -> str:
    """The same text for the same number, however it was stored: ``2``, ``2.0``,
    ``Decimal('2.00')`` and ``"2E+0"`` all give ``2``, ``100`` gives ``1E+2``. Floats are taken at
    their shortest round-trip repr, which is what ``db copy`` writes into PostgreSQL's
    ``numeric``."""
    number = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    if number.is_nan():
        return "NaN"
    if number.is_infinite():
        return "Infinity" if number > 0 else "-Infinity"
    if number.is_zero():
        return "0"  # and not "-0": PostgreSQL's numeric has no negative zero
    return str(number.normalize(_EXACT))


def _json_number(text: str) -> dict[str, str]:
    # Tagged, so that the number 1 and the string "1" stay different.
    return {"#n": canonical_number(text)}


def canonical_json_text(text: str | bytes) -> Any:
    """A JSON document as stored (SQLite's text, PostgreSQL's ``jsonb::text``), canonicalized:
    jsonb reorders keys and rewrites numbers (``1e-07`` comes back as ``0.0000001``)."""
    try:
        parsed = json.loads(
            text, parse_float=_json_number, parse_int=_json_number, parse_constant=_json_number
        )
    except ValueError:
        return {"#invalid": text if isinstance(text, str) else text.hex()}
    return {"#json": parsed}


def canonical_value(value: Any, kind: str) -> Any:  # noqa: PLR0911 - one return per type
    """One column's value as the JSON the row checksum is taken over.

    ``kind`` comes from the column's declared type (:func:`column_kind`); the rest follows the
    value's Python type, so that a PostgreSQL ``uuid``/``timestamptz`` and SQLite's text of the
    same value render the same.
    """
    if value is None:
        return None
    if kind == "json":
        return canonical_json_text(value) if isinstance(value, str | bytes) else value
    if kind == "bool":
        return bool(value)
    if kind == "number":
        return canonical_number(value)
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | Decimal):
        return canonical_number(value)
    if isinstance(value, datetime):
        return format_utc(value) if value.tzinfo is not None else value.isoformat()
    if isinstance(value, date | clock_time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return {"#bytes": bytes(value).hex()}
    return str(value)


def row_hash(row: Mapping[str, Any]) -> int:
    text = json.dumps(row, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return int.from_bytes(hashlib.sha256(text.encode()).digest(), "big")


def column_kind(type_: Any) -> str:
    if isinstance(type_, sa.JSON):
        return "json"
    if isinstance(type_, sa.Boolean):
        return "bool"
    if isinstance(type_, sa.Integer):
        return "int"
    if isinstance(getattr(type_, "impl", type_), sa.Numeric | sa.Float):  # NumberType decorates
        return "number"
    return "plain"


class Digest:
    """The running checksum of one table (order-independent)."""

    def __init__(self) -> None:
        self.rows = 0
        self._sum = 0

    def add(self, row: Mapping[str, Any]) -> None:
        self.rows += 1
        self._sum = (self._sum + row_hash(row)) % _MOD

    def result(self) -> TableDigest:
        return TableDigest(self.rows, self._sum.to_bytes(32, "big").hex())


def compare_tables(
    expected: Mapping[str, TableDigest], actual: Mapping[str, TableDigest], *, what: str
) -> list[str]:
    """What differs between two sets of digests, one sentence per table."""
    problems = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            problems.append(f"table {name}: in {what}, missing from the database")
        elif name not in expected:
            problems.append(f"table {name}: in the database, not in {what}")
        elif actual[name].rows != expected[name].rows:
            problems.append(
                f"table {name}: {actual[name].rows} rows, {what} says {expected[name].rows}"
            )
        elif actual[name].checksum != expected[name].checksum:
            problems.append(
                f"table {name}: content checksum {actual[name].checksum[:12]}… differs from "
                f"{what}'s {expected[name].checksum[:12]}…"
            )
    return problems


def compare_partitions(expected: Mapping[str, int], actual: Mapping[str, int]) -> list[str]:
    problems = []
    for name in sorted(set(expected) | set(actual)):
        if name not in actual:
            problems.append(f"partition {name}: in the manifest, missing from the database")
        elif name not in expected:
            problems.append(f"partition {name}: in the database, not in the manifest")
        elif actual[name] != expected[name]:
            problems.append(
                f"partition {name}: {actual[name]} rows, the manifest says {expected[name]}"
            )
    return problems
