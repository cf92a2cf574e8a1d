"""Alert rule evaluation and the alert state machine (Prometheus' semantics). Pure."""

from __future__ import annotations

import hashlib
import json
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from shipboard.core.comparisons import OPS
from shipboard.monitoring.series import AGGREGATIONS

# An alert that is pending or firing: a rule has at most one of them per label set (one for a
# threshold or anomaly rule, one per series for a promql rule).
ACTIVE = ("pending", "firing")
MAD_SCALE = 1.4826  # makes the MAD a consistent estimator of the standard deviation
# A promql rule's query answers at most this many series (each an alert of its own).
MAX_SERIES = 1000


@dataclass(frozen=True)
class Condition:
    active: bool | None  # None: no data, the rule cannot say
    value: float | None
    reason: str


def threshold(values: Sequence[float], *, agg: str, op: str, value: float) -> Condition:
    if not values and agg != "count":
        return Condition(None, None, "no data in the window")
    measured = AGGREGATIONS[agg](values) if values else 0.0
    active = OPS[op](measured, value)
    return Condition(active, measured, f"{agg} = {measured:.6g} {op} {value:g} is {active}")


def anomaly(
    history: Sequence[float],
    recent: Sequence[float],
    *,
    method: str,
    sensitivity: float,
    min_points: int,
) -> Condition:
    """Is the recent value far from the history? robust_zscore: |x - median| / (1.4826·MAD);
    ewma: outside the EWMA ± sensitivity·σ band. Fires when the score exceeds ``sensitivity``."""
    if len(history) < min_points or not recent:
        return Condition(None, None, f"need {min_points} history points and a recent one")
    current = statistics.fmean(recent)
    if method == "ewma":
        alpha = 0.3
        mean = history[0]
        variance = 0.0
        for x in history[1:]:
            diff = x - mean
            mean += alpha * diff
            variance = (1 - alpha) * (variance + alpha * diff * diff)
        spread = variance**0.5
        score = (
            abs(current - mean) / spread if spread else (0.0 if current == mean else float("inf"))
        )
        centre = mean
    else:
        centre = statistics.median(history)
        mad = statistics.median([abs(x - centre) for x in history]) * MAD_SCALE
        score = abs(current - centre) / mad if mad else (0.0 if current == centre else float("inf"))
    return Condition(
        score > sensitivity,
        current,
        f"{method} score {score:.3g} (value {current:.6g}, centre {centre:.6g})",
    )


@dataclass(frozen=True)
class SeriesCondition:
    """One series of a promql rule's answer: the alert's labels and its condition."""

    labels: dict[str, str]
    condition: Condition


def promql(
    samples: Sequence[tuple[Mapping[str, str], float]],
    *,
    op: str,
    value: float | None,
    rule_labels: Mapping[str, str],
) -> list[SeriesCondition]:
    """Each sample of an instant query as an alert of its own, as Prometheus' alerting rules
    do: labelled with the series' labels (``__name__`` dropped) under the rule's, active while
    ``sample op value`` holds, or always when there is no ``value`` (the condition is then the
    query's own, like ``rate(errors[5m]) > 0.1``). NaN satisfies no condition.

    Raises ``ValueError`` when the answer cannot be told apart or is too large: more than
    ``MAX_SERIES`` series, or two series with the same labels once the rule's are added."""
    if len(samples) > MAX_SERIES:
        raise ValueError(
            f"the query returned {len(samples)} series, more than {MAX_SERIES}; aggregate it"
        )
    out: dict[str, SeriesCondition] = {}
    for series, measured in samples:
        labels = {
            **{k: v for k, v in series.items() if k != "__name__"},
            **rule_labels,
        }
        key = fingerprint(labels)
        if key in out:
            raise ValueError(
                f"two series have the same labels {labels} once the rule's labels are added; "
                "aggregate them or keep the label that tells them apart"
            )
        if value is None:
            active = True
            reason = f"the query returned {measured:.6g}"
        else:
            active = OPS[op](measured, value)
            reason = f"{measured:.6g} {op} {value:g} is {active}"
        # NaN and ±Inf are shown in the reason; stored JSON (PostgreSQL's jsonb) cannot hold them.
        shown = measured if math.isfinite(measured) else None
        out[key] = SeriesCondition(labels, Condition(active, shown, reason))
    return list(out.values())


@dataclass(frozen=True)
class AlertState:
    state: str  # inactive, pending, firing, resolved
    active_since: datetime | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    last_true_at: datetime | None = None


def step(  # noqa: PLR0911 - one return per edge of the state machine reads best
    current: AlertState, condition: bool, now: datetime, *, for_s: float, keep_firing_for_s: float
) -> AlertState:
    """One evaluation. Pending until the condition has held ``for_s``; firing until it has been
    false for ``keep_firing_for_s``; then resolved. A pending alert whose condition clears is
    resolved without ever having fired."""
    if condition:
        if current.state in ("inactive", "resolved"):
            if for_s <= 0:
                return AlertState("firing", now, now, None, now)
            return AlertState("pending", now, None, None, now)
        assert current.active_since is not None
        if current.state == "pending" and now - current.active_since >= timedelta(seconds=for_s):
            return AlertState("firing", current.active_since, now, None, now)
        return AlertState(current.state, current.active_since, current.starts_at, None, now)
    if current.state == "pending":
        return AlertState("resolved", current.active_since, None, now, current.last_true_at)
    if current.state == "firing":
        last = current.last_true_at or now
        if now - last >= timedelta(seconds=keep_firing_for_s):
            return AlertState("resolved", current.active_since, current.starts_at, now, last)
        return current
    return current


def fingerprint(labels: dict[str, str]) -> str:
    """Stable identity of an alert: a hash of its sorted labels (like Alertmanager's)."""
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
