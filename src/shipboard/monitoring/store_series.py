"""Series read from the user's Prometheus-compatible store (SHIPBOARD_PROMETHEUS_URL) with
``query_range``, with the embedded store's semantics (``series.py``): buckets
``[since + k·step, since + (k+1)·step)``, empty ones left out, the same eight aggregations.

The request names a metric, an environment and tags in Shipboard's terms; remote write
(``remote_write.py``) decides what they are called in the store, and the same functions map
them here, so a point forwarded by Shipboard is found under the name it was written with.

Bucket ``k`` is the range query's evaluation at ``since + (k+1)·step`` over
``sel[step] offset 1ms``: the store selects ``(t − step − 1 ms, t − 1 ms]``, which on its
millisecond timestamps is ``[since + k·step, since + (k+1)·step)``. A last bucket shorter than
the step (``until`` is not a whole number of steps from ``since``) is one instant query at
``until`` over the rest. Across series the aggregations are exact for avg (sum of sums over sum
of counts), sum, count, min and max; a percentile is exact for one series, and over several it
is that quantile of the per-series quantiles (PromQL cannot pool the samples of several series).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import httpx

from shipboard.core.errors import InvalidInput, MetricsStoreUnavailable
from shipboard.core.promql import PromStore, RangeSeries, StoreError, escape
from shipboard.monitoring import remote_write as rw

RETRY_AFTER_S = "10"

# ``{r}`` is the range selector; every expression answers at most one unlabelled series.
EXPRESSIONS: dict[str, str] = {
    "avg": "sum(sum_over_time({r})) / sum(count_over_time({r}))",
    "sum": "sum(sum_over_time({r}))",
    "count": "sum(count_over_time({r}))",
    "min": "min(min_over_time({r}))",
    "max": "max(max_over_time({r}))",
    "p50": "quantile(0.5, quantile_over_time(0.5, {r}))",
    "p95": "quantile(0.95, quantile_over_time(0.95, {r}))",
    "p99": "quantile(0.99, quantile_over_time(0.99, {r}))",
}


def selector(name: str, *, environment: str | None, tags: dict[str, str]) -> str:
    """The series selector of a metric, an environment and tags, in the names remote write
    gives them. Label values are escaped: no tag value can end its string and add a matcher.
    A tag that remote write cannot carry (it maps onto ``environment`` or ``source``, or onto
    the same label as another tag) is refused: the store holds no such label to filter on."""
    matchers: list[str] = []
    if environment is not None:
        matchers.append(f'environment="{escape(environment)}"')
    origin: dict[str, str] = {}
    for key in sorted(tags):
        label = rw.label_name(key)
        where = {"loc": ["query", f"tag.{key}"], "msg": "not a label in the metrics store"}
        if label in rw.RESERVED_LABELS:
            raise InvalidInput(
                f"tag {key!r} maps to the store's own label {label!r}; remote write does not "
                "forward it, so the store cannot filter on it (use source=embedded)",
                errors=[where],
            )
        if label in origin:
            raise InvalidInput(
                f"tags {origin[label]!r} and {key!r} both map to label {label!r} in the store",
                errors=[where],
            )
        origin[label] = key
        matchers.append(f'{label}="{escape(tags[key])}"')
    metric = rw.metric_name(name)
    return f"{metric}{{{','.join(matchers)}}}" if matchers else metric


def expression(sel: str, *, agg: str, window_ms: int) -> str:
    """The PromQL of one bucket of ``window_ms`` ending where the query is evaluated."""
    window = f"{window_ms // 1000}s" if window_ms % 1000 == 0 else f"{window_ms}ms"
    return EXPRESSIONS[agg].format(r=f"{sel}[{window}] offset 1ms")


def read(
    store: PromStore,
    *,
    name: str,
    environment: str | None,
    tags: dict[str, str],
    since: datetime,
    until: datetime,
    step_s: int,
    agg: str,
    finite_only: bool = False,
) -> list[tuple[datetime, float]]:
    """The buckets of ``[since, until)`` the store answers; MetricsStoreUnavailable (503)
    when it cannot. A bucket whose aggregate is NaN or ±Inf (Prometheus stores NaN samples: a
    summary's quantile with no observations is one) is a 422 telling the request to ask for
    another aggregation, or, with ``finite_only``, left out like an empty one."""
    sel = selector(name, environment=environment, tags=tags)
    step = timedelta(seconds=step_s)
    whole = (until - since) // step
    points: list[tuple[datetime, float]] = []
    try:
        if whole:
            answer = store.query_range(
                expression(sel, agg=agg, window_ms=step_s * 1000),
                start=since + step,
                end=since + whole * step,
                step_s=step_s,
            )
            # A loop of its own, no call per point (1,440 of them): the start's timestamp is
            # taken once (of a request's time, pydantic's TzInfo, it cost 1.4 µs a point).
            start, add, finite = since.timestamp(), points.append, math.isfinite
            for at, value in _only(answer):
                index = round((at - start) / step_s) - 1
                if 0 <= index < whole:
                    if not finite(value):
                        if finite_only:
                            continue
                        raise _not_finite(since + index * step, value, agg)
                    add((since + index * step, value))
        rest_ms = round((until - since - whole * step) / timedelta(milliseconds=1))
        if rest_ms > 0:
            last = store.query(expression(sel, agg=agg, window_ms=rest_ms), at=until)
            if len(last) > 1:
                raise StoreError("the store answered several series for one aggregate")
            points += [
                _point(since + whole * step, s.value, agg)
                for s in last
                if not finite_only or math.isfinite(s.value)
            ]
    except StoreError as exc:
        raise unavailable(exc) from exc
    return points


def names(
    store: PromStore, *, environment: str | None, since: datetime, until: datetime
) -> list[str]:
    """The metric names the store holds for ``environment`` between two times (the names as
    the store spells them: what Shipboard forwarded is under its mapped name)."""
    match = f'{{environment="{escape(environment)}"}}' if environment else '{__name__=~".+"}'
    try:
        return store.label_values("__name__", match=match, start=since, end=until)
    except StoreError as exc:
        raise unavailable(exc) from exc


def unavailable(exc: StoreError) -> MetricsStoreUnavailable:
    """The 503 for a store that did not answer: what went wrong, never its URL or credentials
    (StoreError's messages carry neither)."""
    cause = exc.__cause__
    if isinstance(cause, httpx.HTTPError):  # no answer at all: refused, timed out, TLS …
        detail = f"could not be reached ({type(cause).__name__}); retry, or read source=embedded"
    else:
        detail = f"answered, but not with series: {exc}"
    return MetricsStoreUnavailable(
        f"the metrics store (SHIPBOARD_PROMETHEUS_URL) {detail}",
        headers={"Retry-After": RETRY_AFTER_S},
    )


def _only(answer: list[RangeSeries]) -> list[tuple[float, float]]:
    if len(answer) > 1:
        raise StoreError("the store answered several series for one aggregate")
    return answer[0].points if answer else []


def _point(start: datetime, value: float, agg: str) -> tuple[datetime, float]:
    if not math.isfinite(value):
        raise _not_finite(start, value, agg)
    return start, value


def _not_finite(start: datetime, value: float, agg: str) -> InvalidInput:
    return InvalidInput(
        f"the store's {agg} of the bucket at {start.astimezone(UTC).isoformat()} is "
        f"{value}, not a finite number: the store holds NaN or infinite samples there (a "
        "summary's quantile with no observations, a ratio over zero requests); narrow the "
        "series with tag.<key>= filters, or read source=embedded, which keeps no such samples"
    )
