"""CSV: a header ``name,value,unit``, then rows with any number of ``key=value`` tag cells."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterator
from typing import Final, Protocol

from shipboard.performance.importers.common import (
    CSV_HEADER,
    MAX_NAME_LENGTH,
    MAX_TAG_KEY_LENGTH,
    MAX_UNIT_LENGTH,
    Collector,
    ImportFailed,
    clip,
    quote,
)

_NOT_CSV: Final = "not JSON, and not CSV with a header name,value,unit"


class _CsvReader(Protocol):
    @property
    def line_num(self) -> int: ...

    def __next__(self) -> list[str]: ...


def parse(text: str, out: Collector) -> None:
    # newline="" hands line endings to the csv module, which is what lets quoted cells span lines.
    reader = csv.reader(io.StringIO(text, newline=""))
    rows = _csv_rows(reader)
    first = next(rows, None)
    if first is None or tuple(cell.strip().lower() for cell in first[:3]) != CSV_HEADER:
        raise ImportFailed(_NOT_CSV)
    for row in rows:
        where = f"CSV line {reader.line_num}"
        if len(row) < len(CSV_HEADER):
            raise ImportFailed(f"{where}: expected name,value,unit, found {len(row)} cell(s)")
        name, raw_value, unit = (cell.strip() for cell in row[:3])
        if not name:
            raise ImportFailed(f"{where}: the name is empty")
        if len(name) > MAX_NAME_LENGTH:
            raise ImportFailed(f"{where}: the name is longer than {MAX_NAME_LENGTH} characters")
        try:
            value = float(raw_value)
        except ValueError:
            raise ImportFailed(f"{where}: value {quote(raw_value)} is not a number") from None
        if not math.isfinite(value):
            raise ImportFailed(f"{where}: value {quote(raw_value)} is not a finite number")
        if not unit:
            raise ImportFailed(f"{where}: the unit is empty")
        if len(unit) > MAX_UNIT_LENGTH:
            raise ImportFailed(f"{where}: the unit is longer than {MAX_UNIT_LENGTH} characters")
        out.add(where, name, value, unit, _csv_tags(row[3:], where))


def _csv_rows(reader: _CsvReader) -> Iterator[list[str]]:
    """The non-blank rows; a csv.Error (say, a cell over the csv field limit) is ImportFailed."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ImportFailed(f"CSV line {reader.line_num}: {exc}") from None
        if any(cell.strip() for cell in row):
            yield row


def _csv_tags(cells: list[str], where: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for raw in cells:
        cell = raw.strip()
        if not cell:
            # A trailing comma is a spreadsheet habit, not a mistake worth refusing a file for.
            continue
        key, sep, value = cell.partition("=")
        key = key.strip()
        if not sep:
            raise ImportFailed(f"{where}: extra cell {quote(cell)} is not a tag key=value")
        if not key:
            raise ImportFailed(f"{where}: tag {quote(cell)} has an empty key")
        if len(key) > MAX_TAG_KEY_LENGTH:
            raise ImportFailed(
                f"{where}: tag key {quote(key)} is longer than {MAX_TAG_KEY_LENGTH} characters"
            )
        tags[key] = clip(value.strip())
    return tags
