"""The server-side SVG charts: ticks, axes, empty series, markers, references, escaping."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from shipboard.core import charts

SVG = "{http://www.w3.org/2000/svg}"
T0 = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)


def parse(markup: str) -> ET.Element:
    """Charts are inlined in HTML but must also be well-formed XML."""
    return ET.fromstring(str(markup))  # noqa: S314 - our own markup, not untrusted input


def texts(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{SVG}text")]


def series(values: list[float], minutes: int = 10) -> charts.Series:
    return charts.Series(
        "latency", [(T0 + timedelta(minutes=minutes * i), v) for i, v in enumerate(values)]
    )


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0, 10, [0, 2.5, 5, 7.5, 10]),
        (0, 9.9, [0, 2.5, 5, 7.5, 10]),
        (0.1, 0.3, [0.1, 0.15, 0.2, 0.25, 0.3]),
        (120, 480, [100, 200, 300, 400, 500]),
        (-3, 7, [-5, -2.5, 0, 2.5, 5, 7.5]),
        (5, 5, [4.5, 4.75, 5, 5.25, 5.5]),
        (0, 0, [-1, -0.5, 0, 0.5, 1]),
    ],
)
def test_nice_ticks_cover_the_range_with_round_steps(
    low: float, high: float, expected: list[float]
) -> None:
    ticks = charts.nice_ticks(low, high)
    assert ticks == pytest.approx(expected)
    assert ticks[0] <= min(low, high)
    assert ticks[-1] >= max(low, high)


def test_nice_ticks_refuse_infinite_bounds() -> None:
    with pytest.raises(ValueError, match="finite"):
        charts.nice_ticks(0, float("inf"))


@pytest.mark.parametrize(
    ("value", "step", "text"),
    [
        (2500, 500, "2.5k"),
        (3000, 1000, "3k"),
        (1_234_567, None, "1.23M"),
        (0.25, 0.05, "0.25"),
        (1, 0.5, "1.0"),
        (0, 0.5, "0.0"),
        (42, None, "42"),
        (-1500, 500, "-1.5k"),
    ],
)
def test_numbers_are_short_and_aligned_to_the_step(
    value: float, step: float | None, text: str
) -> None:
    assert charts.format_number(value, step) == text


def test_time_ticks_fall_on_round_utc_boundaries() -> None:
    start = datetime(2026, 11, 20, 9, 7, tzinfo=UTC)
    hour = charts.time_ticks(start, start + timedelta(hours=1))
    assert [t.strftime("%H:%M") for t in hour] == [
        "09:10",
        "09:20",
        "09:30",
        "09:40",
        "09:50",
        "10:00",
    ]
    day = charts.time_ticks(start, start + timedelta(hours=24))
    assert all(t.minute == 0 and t.hour % 6 == 0 for t in day)
    month = charts.time_ticks(start, start + timedelta(days=30))
    assert all(t.weekday() == 0 and t.hour == 0 for t in month)  # Mondays at midnight
    assert all(start <= t <= start + timedelta(days=30) for t in month)
    assert 2 <= len(month) <= 6


def test_time_labels_follow_the_span() -> None:
    assert charts.time_label(T0 + timedelta(hours=13), timedelta(hours=1)) == "13:00"
    assert charts.time_label(T0, timedelta(hours=24)) == "Nov 20"  # midnight names the day
    assert charts.time_label(T0 + timedelta(hours=6), timedelta(hours=24)) == "06:00"
    assert charts.time_label(T0 + timedelta(days=3), timedelta(days=30)) == "Nov 23"


def test_a_time_chart_has_both_axes_labelled_and_a_line() -> None:
    svg = charts.time_chart(
        [series([1.0, 3.0, 2.0, 4.0])],
        since=T0,
        until=T0 + timedelta(hours=1),
        title="p95 latency",
        unit="ms",
    )
    root = parse(svg)
    assert root.get("role") == "img"
    assert root.get("aria-label") == "p95 latency"
    labels = texts(root)
    assert "ms" in labels  # the value axis names its unit
    assert "time (UTC)" in labels
    assert {"1", "2", "3", "4"} <= set(labels)  # value ticks
    assert {"00:10", "00:20", "00:30", "00:40", "00:50"} <= set(labels)  # time ticks
    [polyline] = list(root.iter(f"{SVG}polyline"))
    assert polyline.get("fill") == "none"
    assert len((polyline.get("points") or "").split()) == 4
    assert len(list(root.iter(f"{SVG}circle"))) == 4  # short series: dots with hover titles


def test_points_lie_inside_the_plot_and_high_values_are_higher() -> None:
    svg = charts.time_chart(
        [series([10.0, 20.0])], since=T0, until=T0 + timedelta(minutes=10), title="t"
    )
    [polyline] = list(parse(svg).iter(f"{SVG}polyline"))
    (x1, y1), (x2, y2) = (
        tuple(float(c) for c in p.split(",")) for p in (polyline.get("points") or "").split()
    )
    assert x1 == pytest.approx(charts.LEFT)
    assert x2 == pytest.approx(charts.LEFT + charts.PLOT_W)
    assert y2 < y1  # SVG's y grows downwards
    for y in (y1, y2):
        assert charts.TOP <= y <= charts.TOP + charts.PLOT_H


def test_an_empty_series_draws_axes_and_says_so() -> None:
    svg = charts.time_chart(
        [charts.Series("nothing", [])],
        since=T0,
        until=T0 + timedelta(hours=1),
        title="empty",
        empty_text="No points yet",
    )
    root = parse(svg)
    assert "No points yet" in texts(root)
    assert not list(root.iter(f"{SVG}polyline"))
    assert not list(root.iter(f"{SVG}circle"))
    assert "time (UTC)" in texts(root)


def test_points_outside_the_range_and_non_finite_values_are_left_out() -> None:
    points = [
        (T0 - timedelta(minutes=5), 1000.0),
        (T0 + timedelta(minutes=5), 1.0),
        (T0 + timedelta(minutes=6), float("nan")),
        (T0 + timedelta(minutes=7), 2.0),
        (T0 + timedelta(hours=2), 1000.0),
    ]
    svg = charts.time_chart(
        [charts.Series("s", points)], since=T0, until=T0 + timedelta(hours=1), title="t"
    )
    root = parse(svg)
    assert len(list(root.iter(f"{SVG}circle"))) == 2
    assert "1k" not in texts(root)  # the outliers outside the range do not stretch the axis


def test_markers_outside_the_range_are_ignored() -> None:
    markers = [
        charts.Marker(T0 - timedelta(minutes=1), "before", "success"),
        charts.Marker(T0 + timedelta(minutes=30), "v1.2.3 success", "success"),
        charts.Marker(T0 + timedelta(minutes=40), "v1.2.4 failed", "failed"),
        charts.Marker(T0 + timedelta(hours=2), "after", "success"),
    ]
    svg = charts.time_chart(
        [series([1.0, 2.0])],
        since=T0,
        until=T0 + timedelta(hours=1),
        title="t",
        markers=markers,
    )
    root = parse(svg)
    groups = [g for g in root.iter(f"{SVG}g") if "marker" in (g.get("class") or "").split()]
    assert [g.get("class") for g in groups] == ["marker marker-success", "marker marker-failed"]
    titles = [g.find(f"{SVG}title").text for g in groups]  # type: ignore[union-attr]
    assert titles == ["v1.2.3 success", "v1.2.4 failed"]
    line = groups[0].find(f"{SVG}line")
    assert line is not None
    assert float(line.get("x1") or 0) == pytest.approx(charts.LEFT + charts.PLOT_W / 2)
    assert "deployment" in texts(root)  # legend


def test_levels_and_bands_are_drawn_and_stretch_the_axis() -> None:
    svg = charts.time_chart(
        [series([98.0, 101.0, 99.0])],
        since=T0,
        until=T0 + timedelta(hours=1),
        title="t",
        levels=[charts.Level(100, "baseline (median) 100", "baseline")],
        bands=[charts.Band(150, None, "past threshold 150")],
    )
    root = parse(svg)
    band = next(r for r in root.iter(f"{SVG}rect") if "band" in (r.get("class") or ""))
    assert band.get("class") == "band band-threshold"
    assert float(band.get("y") or 0) == pytest.approx(charts.TOP)  # open top reaches the edge
    assert "baseline (median) 100" in texts(root)
    assert max(float(t) for t in texts(root) if t.replace(".", "").isdigit()) >= 150


def test_fixed_value_range_keeps_its_bounds() -> None:
    svg = charts.time_chart(
        [series([40.0, 90.0])],
        since=T0,
        until=T0 + timedelta(hours=1),
        title="score",
        y_min=0,
        y_max=100,
    )
    labels = texts(parse(svg))
    assert "0" in labels
    assert "100" in labels
    assert "120" not in labels


def test_several_series_get_their_own_class_and_a_legend() -> None:
    svg = charts.time_chart(
        [
            series([1.0, 2.0]),
            charts.Series("staging", [(T0, 3.0), (T0 + timedelta(minutes=9), 1.0)]),
        ],
        since=T0,
        until=T0 + timedelta(minutes=10),
        title="t",
    )
    root = parse(svg)
    classes = [g.get("class") for g in root.iter(f"{SVG}g") if "series" in (g.get("class") or "")]
    assert classes == ["series series-0", "series series-1"]
    assert {"latency", "staging"} <= set(texts(root))


def test_text_is_escaped_and_odd_kinds_cannot_break_attributes() -> None:
    evil = "<script>alert('x')</script> & \"quotes\""
    svg = charts.time_chart(
        [charts.Series(evil, [(T0 + timedelta(minutes=1), 1.0)])],
        since=T0,
        until=T0 + timedelta(hours=1),
        title=evil,
        unit="<b>",
        markers=[charts.Marker(T0 + timedelta(minutes=2), evil, kind="x' onload='alert(1)")],
        levels=[charts.Level(1.0, evil)],
    )
    text = str(svg)
    assert "<script>" not in text
    assert "<b>" not in text
    assert "onload" not in text
    root = parse(svg)  # still well-formed
    assert root.get("aria-label") == evil
    assert "marker marker-other" in [g.get("class") for g in root.iter(f"{SVG}g")]


def test_an_empty_or_reversed_period_is_refused() -> None:
    with pytest.raises(ValueError, match="before"):
        charts.time_chart([], since=T0, until=T0, title="t")


def test_bar_chart_groups_bars_and_labels_weeks() -> None:
    svg = charts.bar_chart(
        ["11-02", "11-09", "11-16"],
        [
            charts.Bars("deployments", [3, 0, 5], "deployed"),
            charts.Bars("failed", [1, 0, 0], "failed"),
        ],
        title="per week",
        unit="count",
    )
    root = parse(svg)
    bars = [
        r
        for g in root.iter(f"{SVG}g")
        if (g.get("class") or "").startswith("bars ")
        for r in g.iter(f"{SVG}rect")
    ]
    assert len(bars) == 6
    heights = [float(r.get("height") or 0) for r in bars]
    assert heights[2] > heights[0] > heights[3] > 0  # 5 > 3 > 1
    assert heights[1] == 0
    labels = texts(root)
    assert {"11-02", "11-09", "11-16", "count", "deployments", "failed"} <= set(labels)
    assert "Nothing to show" not in labels


def test_an_empty_bar_chart_says_so_and_mismatched_lengths_are_refused() -> None:
    svg = charts.bar_chart(["a", "b"], [charts.Bars("n", [0, 0])], title="t", empty_text="Quiet")
    assert "Quiet" in texts(parse(svg))
    with pytest.raises(ValueError, match="2 values for 3 bars"):
        charts.bar_chart(["a", "b", "c"], [charts.Bars("n", [1, 2])], title="t")


def test_many_categories_do_not_crowd_their_labels() -> None:
    weeks = [f"w{i:03d}" for i in range(104)]
    svg = charts.bar_chart(weeks, [charts.Bars("n", [1] * 104)], title="t")
    shown = [t for t in texts(parse(svg)) if t.startswith("w")]
    assert 5 <= len(shown) < 40
