"""Time helpers: everything Shipboard stores is UTC and timezone-aware."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a UTC offset")
    return value.astimezone(UTC)


_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
# ASCII digits only (``\d`` would take any script's digits), at most nine of them, then a unit;
# blanks around the unit are allowed, as the silence form always took ``30 min``.
_DURATION = re.compile(r"\s*([0-9]{1,9})\s*(s|min|m|h|d|w)\s*", re.ASCII | re.IGNORECASE)


MAX_DURATION_S = 3660 * 86400


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m`` (or ``90min``), ``45s``, ``2w`` -> a timedelta.

    The one parser for every duration a person types (API periods, config, CLI options, the
    silence form): positive, at most 10 years; ValueError otherwise."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise ValueError(f"{text.strip()[:20]!r} is not a duration like 30d, 12h, 90m or 2w")
    amount = int(match.group(1))
    if amount <= 0:
        raise ValueError("duration must be positive")
    seconds = amount * _UNITS[match.group(2).lower()]
    if seconds > MAX_DURATION_S:  # beyond this, date arithmetic overflows or means nothing
        raise ValueError("duration may be at most 10 years")
    return timedelta(seconds=seconds)
