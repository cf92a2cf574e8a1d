"""Time helpers: everything Shipboard stores is UTC and timezone-aware."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


def utcnow() -> datetime:
    return datetime.now(UTC)


def ensure_utc(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("timestamp must carry a UTC offset")
    return value.astimezone(UTC)


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


MAX_DURATION_S = 3660 * 86400


def parse_duration(text: str) -> timedelta:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` -> a timedelta."""
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in _UNITS or not text[:-1].isdigit():
        raise ValueError(f"{text!r} is not a duration like 30d, 12h, 90m or 2w")
    amount = int(text[:-1])
    if amount <= 0:
        raise ValueError("duration must be positive")
    seconds = amount * _UNITS[text[-1]]
    if seconds > MAX_DURATION_S:  # beyond this, date arithmetic overflows or means nothing
        raise ValueError("duration may be at most 10 years")
    return timedelta(seconds=seconds)
