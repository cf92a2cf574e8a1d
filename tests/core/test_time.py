"""The one duration parser (``core.time.parse_duration``): what it takes and what it refuses."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shipboard.core.time import MAX_DURATION_S, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("45s", timedelta(seconds=45)),
        ("90m", timedelta(minutes=90)),
        ("90min", timedelta(minutes=90)),  # the silence form's spelling
        ("30 min", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("2H", timedelta(hours=2)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(weeks=2)),
        (" 7d ", timedelta(days=7)),
        ("007d", timedelta(days=7)),
        ("3660d", timedelta(seconds=MAX_DURATION_S)),
    ],
)
def test_parse_duration_takes_a_number_and_a_unit(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "d",
        "3x",
        "7",
        "1.5h",
        "-1d",
        "+1d",
        "1d2h",
        "d7",
        "1 d 2 h",
        "١٢d",  # Arabic-Indic digits: int() reads them, a duration does not
        "²d",
        "1234567890s",  # ten digits
        "7d\n1d",
    ],
)
def test_parse_duration_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(("text", "message"), [("0d", "positive"), ("3661d", "at most 10 years")])
def test_parse_duration_bounds(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)
