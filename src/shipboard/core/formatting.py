"""How Shipboard writes durations, percentages and sizes for people: one format per quantity,
used by the web pages, the CLI and the reports alike. Pure: values in, text out.

- A duration reads in its two largest units, rounded to the second: ``2 d 12 h``,
  ``1 h 45 min``, ``4 min 10 s``, ``59 s``.
- A ratio reads as a percentage with a space before the sign: ``28.6 %``.
- A size reads in decimal (SI) units, 1 kB being 1,000 bytes: ``512 B``, ``1.5 MB``.

A value that is missing (None) reads as :data:`MISSING`, never as a 0 that looks like a
measurement.
"""

from __future__ import annotations

from typing import Final

MISSING: Final = "—"
_DURATION_UNITS: Final = (("d", 86_400), ("h", 3600), ("min", 60), ("s", 1))
_SIZE_UNITS: Final = ("B", "kB", "MB", "GB", "TB")


def duration(seconds: float | None) -> str:
    """The two largest units that apply, like ``2 d 3 h`` or ``4 min 10 s``; under a minute,
    whole seconds (``59 s``)."""
    if seconds is None:
        return MISSING
    remaining = max(0, round(seconds))
    for i, (name, size) in enumerate(_DURATION_UNITS[:-1]):
        if remaining >= size:
            whole, remaining = divmod(remaining, size)
            smaller_name, smaller_size = _DURATION_UNITS[i + 1]
            return f"{whole} {name} {remaining // smaller_size} {smaller_name}"
    return f"{remaining} s"


def percent(ratio: float | None, *, digits: int = 1) -> str:
    """A ratio (0.286) as a percentage (``28.6 %``)."""
    if ratio is None:
        return MISSING
    return f"{ratio * 100:.{digits}f} %"


def percent_change(points: float | None, *, digits: int = 1) -> str:
    """A change already in percent (12.5, -3) with its sign: ``+12.5 %``, ``-3.0 %``."""
    if points is None:
        return MISSING
    return f"{points:+.{digits}f} %"


def size(count: int | None) -> str:
    """Bytes in decimal units: ``512 B``, ``1.5 kB``, ``2.0 MB``; TB is the largest."""
    if count is None:
        return MISSING
    value = float(count)
    for unit in _SIZE_UNITS:
        if abs(value) < 1000 or unit == _SIZE_UNITS[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable: the last unit always applies")
