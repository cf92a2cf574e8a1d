"""Charts as inline SVG, drawn on the server so that pages need no script and the CSP can stay
strict. Pure: data in, markup out, no clock and no database. Every text that reaches the markup
is escaped here, so callers may pass user-supplied names and labels as they are.

Colours come from app.css through the class names (``series-0``, ``marker-success``, …); the
markup only sets what must hold without a stylesheet (no fill on lines)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from markupsafe import Markup, escape

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 62, 14, 32, 34
PLOT_W = WIDTH - LEFT - RIGHT
PLOT_H = HEIGHT - TOP - BOTTOM
# Average character advance, in viewBox units, used to keep labels from colliding. Axis text
# is 11 units on wide screens and 20 on phones (app.css), where the chart is shown at half
# size; spacing is planned for the phone. Legend text is 11 or 15 units.
CHAR_W = 11.0
LEGEND_CHAR_W = 9.0
DOTS_UP_TO = 60  # points drawn as dots (with a hover title) when a series is this short
NICE_TIME_STEPS = (
    60,
    300,
    600,
    900,
    1800,
    3600,
    2 * 3600,
    3 * 3600,
    6 * 3600,
    12 * 3600,
    86400,
    2 * 86400,
    7 * 86400,
    14 * 86400,
    28 * 86400,
    91 * 86400,
)
_MONDAY_OFFSET = 4 * 86400  # the epoch was a Thursday; weekly ticks fall on Mondays
_KIND = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


@dataclass(frozen=True)
class Series:
    name: str
    points: Sequence[tuple[datetime, float]]


@dataclass(frozen=True)
class Marker:
    """A vertical line at a moment, such as a deployment; ``kind`` picks its colour."""

    at: datetime
    label: str
    kind: str = "deploy"


@dataclass(frozen=True)
class Level:
    """A horizontal reference line (a baseline, a target), named in the legend."""

    value: float
    label: str
    kind: str = "baseline"


@dataclass(frozen=True)
class Band:
    """A horizontal band; an open side (None) reaches the edge of the plot."""

    low: float | None
    high: float | None
    label: str
    kind: str = "threshold"


@dataclass(frozen=True)
class Bars:
    """One series of a bar chart: a value per category."""

    name: str
    values: Sequence[float]
    kind: str = "bar"


def _kind(kind: str) -> str:
    # Kinds become class names; anything odd falls back rather than breaking the attribute.
    return kind if _KIND.match(kind) else "other"


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def nice_step(raw: float) -> float:
    """The smallest of 1, 2, 2.5 or 5 times a power of ten that is at least ``raw``."""
    if raw <= 0 or not math.isfinite(raw):
        return 1.0
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0):
        if factor * power >= raw * (1 - 1e-9):
            return factor * power
    return 10.0 * power


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high], about ``count`` of them."""
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError("ticks need finite bounds")
    if high < low:
        low, high = high, low
    if high == low:
        pad = abs(low) * 0.1 or 1.0
        low, high = low - pad, high + pad
    step = nice_step((high - low) / max(1, count - 1))
    first = math.floor(low / step + 1e-9)
    last = math.ceil(high / step - 1e-9)
    # Multiplying (not adding up steps) keeps 0.1 + 0.2 from drifting; + 0.0 turns -0.0 to 0.0.
    return [round(i * step, 12) + 0.0 for i in range(first, last + 1)]


def format_number(value: float, step: float | None = None) -> str:
    """Short labels: 1.5k, 2M, 0.25. With a tick ``step``, every label of an axis shows as many
    decimals as the step needs, so 0.5 and 1.0 line up as 0.5 and 1.0, not 0.5 and 1."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            scaled = value / size
            return (
                f"{scaled:.{_decimals(step / size)}f}{suffix}" if step else f"{scaled:.3g}{suffix}"
            )
    return f"{value:.{_decimals(step)}f}" if step else f"{value:.4g}"


def _decimals(step: float) -> int:
    text = f"{step:.6f}".rstrip("0").rstrip(".")
    return len(text.split(".")[1]) if "." in text else 0


def time_ticks(since: datetime, until: datetime, max_ticks: int = 6) -> list[datetime]:
    """Tick moments on round UTC boundaries (minutes, hours, midnights, Mondays)."""
    span = (until - since).total_seconds()
    step = next((s for s in NICE_TIME_STEPS if span / s <= max_ticks), NICE_TIME_STEPS[-1])
    while span / step > max_ticks:
        step *= 2
    offset = _MONDAY_OFFSET if step % (7 * 86400) == 0 else 0
    start = since.timestamp()
    first = math.ceil((start - offset) / step) * step + offset
    out = []
    moment = first
    while moment <= until.timestamp():
        out.append(datetime.fromtimestamp(moment, tz=UTC))
        moment += step
    return out


def time_label(moment: datetime, span: timedelta) -> str:
    moment = moment.astimezone(UTC)
    if span <= timedelta(days=2):
        at_midnight = moment.hour == 0 and moment.minute == 0
        return moment.strftime("%b %d" if at_midnight and span > timedelta(hours=6) else "%H:%M")
    return moment.strftime("%b %d")


def _num(value: float) -> str:
    return f"{value:.1f}"


def _text(x: float, y: float, content: str, *, anchor: str = "middle", cls: str = "") -> str:
    klass = f" class='{cls}'" if cls else ""
    return (
        f"<text x='{_num(x)}' y='{_num(y)}' text-anchor='{anchor}'{klass}>{escape(content)}</text>"
    )


def _svg(title: str, body: list[str]) -> Markup:
    label = escape(title)
    # Every piece of ``body`` was built from numbers and escape()d text in this module.
    return Markup(  # noqa: S704
        f"<svg class='chart-svg' xmlns='http://www.w3.org/2000/svg' "
        f"viewBox='0 0 {WIDTH} {HEIGHT}' role='img' aria-label='{label}'>"
        f"<title>{label}</title>{''.join(body)}</svg>"
    )


def _unit(unit: str) -> str:
    return _text(4, 16, unit[:16], anchor="start", cls="unit")


def _legend(items: list[tuple[str, str]], unit: str) -> list[str]:
    """Swatches and names in a row above the plot, after the unit, as many as fit."""
    out = []
    x = max(float(LEFT), 4 + len(unit[:16]) * CHAR_W + 12) if unit else float(LEFT)
    for cls, name in items:
        text = name[:40]
        width = 14 + len(text) * LEGEND_CHAR_W
        if x + width > WIDTH:
            break
        out.append(f"<rect class='swatch {cls}' x='{_num(x)}' y='7' width='10' height='10'/>")
        out.append(_text(x + 14, 16, text, anchor="start", cls="legend"))
        x += width + 14
    return out


@dataclass(frozen=True)
class _Frame:
    """Where values and moments land on the plot."""

    since: datetime
    until: datetime
    bottom: float
    top: float

    def x(self, moment: datetime) -> float:
        whole = (self.until - self.since).total_seconds()
        return LEFT + (moment - self.since).total_seconds() / whole * PLOT_W

    def y(self, value: float) -> float:
        value = min(max(value, self.bottom), self.top)
        return TOP + (1 - (value - self.bottom) / (self.top - self.bottom)) * PLOT_H

    def inside(self, moment: datetime) -> bool:
        return self.since <= moment <= self.until


def _value_axis(
    values: list[float], y_min: float | None, y_max: float | None
) -> tuple[list[float], float, float]:
    """Ticks and the bottom and top of the value axis; fixed when both bounds are given."""
    low = min(values, default=0.0)
    high = max(values, default=1.0)
    if y_min is not None and y_max is not None:
        ticks = [t for t in nice_ticks(y_min, y_max) if y_min <= t <= y_max] or [y_min, y_max]
        return ticks, y_min, y_max
    if y_min is not None:
        low = min(low, y_min)
    if y_max is not None:
        high = max(high, y_max)
    ticks = nice_ticks(low, high)
    return ticks, ticks[0], ticks[-1]


def _axes(frame: _Frame, ticks: list[float], unit: str) -> list[str]:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else None
    base = TOP + PLOT_H
    out = ["<g class='grid'>"]
    out += [
        f"<line x1='{LEFT}' y1='{_num(frame.y(t))}' x2='{LEFT + PLOT_W}' y2='{_num(frame.y(t))}'/>"
        for t in ticks
    ]
    out.append("</g><g class='axis'>")
    out += [_text(LEFT - 6, frame.y(t) + 4, format_number(t, step), anchor="end") for t in ticks]
    if unit:
        out.append(_unit(unit))
    span = frame.until - frame.since
    last_right = -math.inf
    for moment in time_ticks(frame.since, frame.until):
        x = frame.x(moment)
        label = time_label(moment, span)
        half = len(label) * CHAR_W / 2
        out.append(f"<line x1='{_num(x)}' y1='{base}' x2='{_num(x)}' y2='{base + 4}'/>")
        # Skip a label that would overlap the previous one or run off the right edge.
        if x - half > last_right + 4 and x + half <= WIDTH:
            out.append(_text(x, base + 17, label))
            last_right = x + half
    out.append(_text(LEFT + PLOT_W, HEIGHT - 3, "time (UTC)", anchor="end", cls="unit"))
    out.append(f"<line x1='{LEFT}' y1='{base}' x2='{LEFT + PLOT_W}' y2='{base}'/></g>")
    return out


def _bands(frame: _Frame, bands: Sequence[Band]) -> list[str]:
    out = []
    for band in bands:
        upper = frame.y(band.high if band.high is not None and _finite(band.high) else frame.top)
        lower = frame.y(band.low if band.low is not None and _finite(band.low) else frame.bottom)
        if lower - upper > 0:
            out.append(
                f"<rect class='band band-{_kind(band.kind)}' x='{LEFT}' y='{_num(upper)}' "
                f"width='{PLOT_W}' height='{_num(lower - upper)}'>"
                f"<title>{escape(band.label)}</title></rect>"
            )
    return out


def _levels(frame: _Frame, levels: Sequence[Level]) -> list[str]:
    out = []
    for level in levels:
        if not _finite(level.value) or not frame.bottom <= level.value <= frame.top:
            continue
        y = frame.y(level.value)
        out.append(
            f"<g class='level level-{_kind(level.kind)}'><title>{escape(level.label)}</title>"
            f"<line x1='{LEFT}' y1='{_num(y)}' x2='{LEFT + PLOT_W}' y2='{_num(y)}'/></g>"
        )
    return out


def _markers(frame: _Frame, markers: Sequence[Marker]) -> list[str]:
    out = []
    for marker in markers:
        if not frame.inside(marker.at):
            continue
        x = frame.x(marker.at)
        out.append(
            f"<g class='marker marker-{_kind(marker.kind)}'><title>{escape(marker.label)}</title>"
            f"<line x1='{_num(x)}' y1='{TOP}' x2='{_num(x)}' y2='{TOP + PLOT_H}'/>"
            f"<path d='M{_num(x - 4)},{TOP - 1} L{_num(x + 4)},{TOP - 1} L{_num(x)},{TOP + 5} Z'/>"
            "</g>"
        )
    return out


def _line(
    frame: _Frame, index: int, name: str, points: list[tuple[datetime, float]], unit: str
) -> list[str]:
    out = [f"<g class='series series-{index % 6}'><title>{escape(name)}</title>"]
    if len(points) > 1:
        coords = " ".join(f"{_num(frame.x(t))},{_num(frame.y(v))}" for t, v in points)
        out.append(f"<polyline fill='none' points='{coords}'/>")
    if len(points) <= DOTS_UP_TO:
        for t, v in points:
            hover = f"{t.astimezone(UTC):%Y-%m-%d %H:%M} UTC: {v:g} {unit}".rstrip()
            out.append(
                f"<circle cx='{_num(frame.x(t))}' cy='{_num(frame.y(v))}' r='3'>"
                f"<title>{escape(hover)}</title></circle>"
            )
    out.append("</g>")
    return out


def time_chart(
    series: Sequence[Series],
    *,
    since: datetime,
    until: datetime,
    title: str,
    unit: str = "",
    markers: Sequence[Marker] = (),
    levels: Sequence[Level] = (),
    bands: Sequence[Band] = (),
    y_min: float | None = None,
    y_max: float | None = None,
    empty_text: str = "No data in this range",
) -> Markup:
    """Lines over time between ``since`` and ``until``, with a labelled time axis (UTC) and
    value axis (``unit``). Points and markers outside the range are left out."""
    if since >= until:
        raise ValueError("since must be before until")
    kept = [
        sorted((t, v) for t, v in s.points if since <= t <= until and _finite(v)) for s in series
    ]
    values = [v for points in kept for _, v in points]
    references = [lv.value for lv in levels if _finite(lv.value)]
    references += [e for b in bands for e in (b.low, b.high) if e is not None and _finite(e)]
    ticks, bottom, top = _value_axis([*values, *references], y_min, y_max)
    frame = _Frame(since, until, bottom, top)
    body = [f"<rect class='plot' x='{LEFT}' y='{TOP}' width='{PLOT_W}' height='{PLOT_H}'/>"]
    body += _bands(frame, bands)
    body += _axes(frame, ticks, unit)
    body += _levels(frame, levels)
    body += _markers(frame, markers)
    for index, (source, points) in enumerate(zip(series, kept, strict=True)):
        if points:
            body += _line(frame, index, source.name, points, unit)
    if not values:
        body.append(_text(LEFT + PLOT_W / 2, TOP + PLOT_H / 2, empty_text, cls="empty-text"))
    legend: list[tuple[str, str]] = []
    if len(series) > 1:
        legend += [(f"series-{i % 6}", s.name) for i, s in enumerate(series)]
    legend += [(f"level-{_kind(lv.kind)}", lv.label) for lv in levels if _finite(lv.value)]
    legend += [(f"band-{_kind(b.kind)}", b.label) for b in bands]
    if any(frame.inside(m.at) for m in markers):
        legend.append(("marker-deploy", "deployment"))
    body += _legend(legend, unit)
    return _svg(title, body)


def bar_chart(
    categories: Sequence[str],
    groups: Sequence[Bars],
    *,
    title: str,
    unit: str = "",
    empty_text: str = "Nothing to show",
) -> Markup:
    """Grouped bars, one group per category, starting from zero."""
    for group in groups:
        if len(group.values) != len(categories):
            raise ValueError(f"{group.name}: {len(group.values)} values for {len(categories)} bars")
    values = [v for g in groups for v in g.values if _finite(v)]
    top_value = max([*values, 0.0])
    ticks = nice_ticks(0.0, top_value if top_value > 0 else 1.0, count=4)
    top = ticks[-1]
    step = ticks[1] - ticks[0] if len(ticks) > 1 else None

    def y_of(value: float) -> float:
        return TOP + (1 - max(0.0, min(value, top)) / top) * PLOT_H

    body = [f"<rect class='plot' x='{LEFT}' y='{TOP}' width='{PLOT_W}' height='{PLOT_H}'/>"]
    body.append("<g class='grid'>")
    body += [
        f"<line x1='{LEFT}' y1='{_num(y_of(t))}' x2='{LEFT + PLOT_W}' y2='{_num(y_of(t))}'/>"
        for t in ticks
    ]
    body.append("</g><g class='axis'>")
    body += [_text(LEFT - 6, y_of(t) + 4, format_number(t, step), anchor="end") for t in ticks]
    if unit:
        body.append(_unit(unit))
    slot = PLOT_W / max(1, len(categories))
    width = min(slot * 0.8 / max(1, len(groups)), 28.0)
    longest = max((len(c) for c in categories), default=1)
    label_every = max(1, math.ceil((longest * CHAR_W + 6) / slot))
    for i, category in enumerate(categories):
        if i % label_every == 0:
            body.append(_text(LEFT + slot * (i + 0.5), TOP + PLOT_H + 17, category))
    body.append(
        f"<line x1='{LEFT}' y1='{TOP + PLOT_H}' x2='{LEFT + PLOT_W}' y2='{TOP + PLOT_H}'/></g>"
    )
    start = (slot - width * len(groups)) / 2
    for g, group in enumerate(groups):
        body.append(f"<g class='bars bars-{_kind(group.kind)}'>")
        for i, (category, value) in enumerate(zip(categories, group.values, strict=True)):
            if not _finite(value):
                continue
            x = LEFT + slot * i + start + width * g
            y = y_of(value)
            body.append(
                f"<rect x='{_num(x)}' y='{_num(y)}' width='{_num(width)}' "
                f"height='{_num(TOP + PLOT_H - y)}'>"
                f"<title>{escape(f'{category}: {value:g} {group.name}')}</title></rect>"
            )
            if value and width >= 10:
                body.append(_text(x + width / 2, y - 3, format_number(value), cls="count"))
        body.append("</g>")
    if not any(values):
        body.append(_text(LEFT + PLOT_W / 2, TOP + PLOT_H / 2, empty_text, cls="empty-text"))
    if len(groups) > 1:
        body += _legend([(f"bars-{_kind(g.kind)}", g.name) for g in groups], unit)
    return _svg(title, body)


def sparkline(
    values: Sequence[float], *, title: str = "trend", width: int = 160, height: int = 32
) -> Markup:
    """A small line without axes, for a table cell: how a series moved, not its values. Empty
    with fewer than two finite values."""
    kept = [v for v in values if _finite(v)]
    if len(kept) < 2:
        return Markup("")
    low, high = min(kept), max(kept)
    span = (high - low) or 1.0
    step = width / (len(kept) - 1)
    coords = " ".join(
        f"{_num(i * step)},{_num(height - (v - low) / span * (height - 4) - 2)}"
        for i, v in enumerate(kept)
    )
    label = escape(title)
    # Built from numbers and escape()d text only.
    return Markup(  # noqa: S704
        f"<svg class='sparkline' xmlns='http://www.w3.org/2000/svg' width='{width}' "
        f"height='{height}' viewBox='0 0 {width} {height}' role='img' aria-label='{label}'>"
        f"<polyline fill='none' points='{coords}'/></svg>"
    )
