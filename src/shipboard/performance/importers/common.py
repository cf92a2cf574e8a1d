"""What every format shares: the rows, the limits, the one error, the checks on every row."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Final

MAX_RESULTS: Final = 100_000
MAX_NAME_LENGTH: Final = 200
MAX_UNIT_LENGTH: Final = 32
MAX_TAG_KEY_LENGTH: Final = 64
MAX_TAG_VALUE_LENGTH: Final = 256

CSV_HEADER: Final = ("name", "value", "unit")

# Upload messages quote pieces of the file; a cap keeps one bad cell from flooding them.
_QUOTE_LIMIT: Final = 80


class ImportFailed(ValueError):
    """The file is not a results file Shipboard can read; the message says what is wrong."""


@dataclass(frozen=True)
class ParsedResult:
    name: str
    value: float
    unit: str
    tags: dict[str, str]
    timestamp: datetime | None


@dataclass(frozen=True)
class ParsedResults:
    format: str
    results: list[ParsedResult]


class Collector:
    """Gathers rows and enforces what holds for every format: the cap, names, finite values."""

    def __init__(self, overrides: dict[str, str]) -> None:
        self.results: list[ParsedResult] = []
        for key, value in overrides.items():
            check_storable(f"the {key} given", value)
        self._overrides = overrides
        # Rows of one benchmark share a tags dict: checking it once per dict, not once per
        # row, keeps a 100,000-row file cheap.
        self._checked_tags: Mapping[str, str] | None = None

    def add(
        self,
        where: str,
        name: str,
        value: float,
        unit: str,
        tags: Mapping[str, str],
        timestamp: datetime | None = None,
    ) -> None:
        if len(name) > MAX_NAME_LENGTH:
            raise ImportFailed(
                f"{where}: the name {quote(name)} is longer than {MAX_NAME_LENGTH} characters"
            )
        if not math.isfinite(value):
            raise ImportFailed(f"{where}: {name} is not a finite number ({value})")
        check_storable(where, name)
        check_storable(where, unit)
        if tags is not self._checked_tags:
            for key, tag_value in tags.items():
                check_storable(where, key)
                check_storable(where, tag_value)
            self._checked_tags = tags
        if len(self.results) >= MAX_RESULTS:
            raise ImportFailed(f"more than {MAX_RESULTS} results in the file")
        self.results.append(
            ParsedResult(
                name=name,
                value=value,
                unit=unit,
                # A fresh dict per row: callers may change one row's tags without the others'.
                tags={**tags, **self._overrides},
                timestamp=timestamp,
            )
        )


# json.loads can legitimately return None, so "not JSON" needs its own marker.
NOT_JSON: Final = object()


def load_json(text: str) -> object:
    try:
        return json.loads(text)
    except RecursionError:
        raise ImportFailed("JSON nested too deeply") from None
    except ValueError as exc:
        # A file that opens like JSON is JSON gone wrong; say where, not "not CSV".
        if text.lstrip()[:1] in ("{", "["):
            raise ImportFailed(f"not valid JSON: {quote(str(exc), quotes=False)}") from None
        return NOT_JSON


def as_number(raw: object) -> float | None:
    """A JSON number as a float, possibly non-finite; None for anything else, null included."""
    # bool is an int subclass, but true is not 1.0 in a results file.
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        return None
    try:
        return float(raw)
    except OverflowError:
        # An integer beyond float range: report it like any other infinite value.
        return math.inf


def plain_text(raw: object) -> str:
    return clip(raw) if isinstance(raw, str) else ""


def tag_text(raw: object, where: str) -> str:
    if isinstance(raw, str):
        return clip(raw)
    try:
        if raw is None or isinstance(raw, bool | int | float):
            # str(), not JSON, so a tag reads as pytest shows the parameter in the test id.
            return clip(str(raw))
        return clip(json.dumps(raw, ensure_ascii=False, sort_keys=True))
    except (RecursionError, ValueError, TypeError):
        raise ImportFailed(f"{where}: a parameter is nested too deeply to label") from None


def check_storable(where: str, text: str) -> None:
    # PostgreSQL text and JSONB cannot hold NUL, and a lone surrogate (JSON allows "\ud800")
    # cannot be encoded for the database at all: refuse both here, with a place to point to.
    if "\x00" in text:
        raise ImportFailed(f"{where}: {quote(text)} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ImportFailed(f"{where}: {quote(text)} is not valid Unicode text") from None


def clip(text: str) -> str:
    return text[:MAX_TAG_VALUE_LENGTH]


def quote(text: str, *, quotes: bool = True) -> str:
    shown = repr(text)[1:-1]
    if len(shown) > _QUOTE_LIMIT:
        shown = shown[: _QUOTE_LIMIT - 1] + "…"
    return f"'{shown}'" if quotes else shown
