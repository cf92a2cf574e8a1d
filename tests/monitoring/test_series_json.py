"""``GET /api/v1/metrics/series`` is written by orjson, not by its pydantic model: the bytes
must stay the ones pydantic writes for the same series, whatever the offsets and values."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import TypeAdapter

from shipboard.core.types import DateTime
from shipboard.monitoring.schemas import Series, series_json

# A request's times come parsed by pydantic (its own TzInfo), the database's in datetime's UTC.
_REQUEST_TIME = TypeAdapter(DateTime)


@pytest.mark.parametrize(
    ("since", "environment", "tags"),
    [
        (_REQUEST_TIME.validate_python("2026-12-03T03:09:00Z"), "production", {}),
        (_REQUEST_TIME.validate_python("2026-12-03T05:09:00.5+02:00"), None, {"pod": "a"}),
        (
            _REQUEST_TIME.validate_python("2026-12-02T21:39:00.000001-05:30"),
            "development",
            {"ключ": 'x"\\é'},
        ),
        (datetime(2026, 12, 3, 3, 9, tzinfo=UTC), "staging", {}),
        (datetime(2026, 12, 3, 3, 9, tzinfo=timezone(timedelta(hours=9))), "staging", {}),
    ],
)
def test_the_answer_is_what_pydantic_writes(
    since: datetime, environment: str | None, tags: dict[str, str]
) -> None:
    values = [0.1, 1.0, -0.0, 1e16, 5e-324, 1.7976931348623157e308, float("inf"), float("nan")]
    series = Series(
        name="checkout.latency",
        environment=environment,
        agg="avg",
        step_s=60,
        since=since,
        until=since + timedelta(minutes=len(values)),
        tags=tags,
        points=[(since + timedelta(minutes=k), v) for k, v in enumerate(values)],
        source="store",
    )
    assert series_json(series) == series.model_dump_json().encode()
