"""The one way durations, percentages and sizes read (``core.formatting``)."""

from __future__ import annotations

import pytest

from shipboard.core import formatting

DAY = 86_400
HOUR = 3_600


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "—"),
        (0.0, "0 s"),
        (59.4, "59 s"),
        (60.0, "1 min 0 s"),
        (3599.0, "59 min 59 s"),
        (6300.0, "1 h 45 min"),
        (86_400.0, "1 d 0 h"),
        (2.5 * DAY, "2 d 12 h"),
        (200 * DAY + 5 * HOUR + 59, "200 d 5 h"),
    ],
)
def test_durations_read_in_the_two_largest_units(seconds: float | None, text: str) -> None:
    assert formatting.duration(seconds) == text


@pytest.mark.parametrize(
    ("ratio", "digits", "text"),
    [
        (None, 1, "—"),
        (0.0, 1, "0.0 %"),
        (2 / 7, 1, "28.6 %"),
        (1.0, 1, "100.0 %"),
        (0.25, 0, "25 %"),
    ],
)
def test_ratios_read_as_percentages(ratio: float | None, digits: int, text: str) -> None:
    assert formatting.percent(ratio, digits=digits) == text


@pytest.mark.parametrize(
    ("points", "text"), [(None, "—"), (12.54, "+12.5 %"), (-3.0, "-3.0 %"), (0.0, "+0.0 %")]
)
def test_changes_in_percent_carry_their_sign(points: float | None, text: str) -> None:
    assert formatting.percent_change(points) == text


@pytest.mark.parametrize(
    ("count", "text"),
    [
        (None, "—"),
        (0, "0 B"),
        (999, "999 B"),
        (1000, "1.0 kB"),
        (1536, "1.5 kB"),
        (2_000_000, "2.0 MB"),
        (71 * 10**9, "71.0 GB"),
        (5 * 10**15, "5000.0 TB"),
    ],
)
def test_sizes_read_in_decimal_units(count: int | None, text: str) -> None:
    assert formatting.size(count) == text
