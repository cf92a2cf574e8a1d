"""Post-deploy analysis: one measurement per check per interval, and the verdict. Pure.

Argo Rollouts' semantics: each measurement is Successful, Failed or Inconclusive (no data); the
analysis fails when the failures exceed ``failure_limit``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from shipboard.core.comparisons import OPS

Result = Literal["Successful", "Failed", "Inconclusive"]
MIN_SAMPLES = 3

AGGREGATES: dict[str, Callable[[Sequence[float]], float]] = {
    "avg": statistics.fmean,
    "min": min,
    "max": max,
    "sum": math.fsum,
    "count": lambda values: float(len(values)),
}


@dataclass(frozen=True)
class Measurement:
    check: str
    result: Result
    reason: str
    value: float | None = None
    samples: int = 0
    p_value: float | None = None
    effect: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def threshold(
    name: str, values: Sequence[float], *, aggregate: str, op: str, value: float
) -> Measurement:
    """Successful when ``aggregate(values) op value`` holds over the interval."""
    if not values and aggregate != "count":
        return Measurement(name, "Inconclusive", "no data points in the interval")
    measured = AGGREGATES[aggregate](values)
    ok = OPS[op](measured, value)
    return Measurement(
        name,
        "Successful" if ok else "Failed",
        f"{aggregate} = {measured:.6g}; expected {op} {value:g}",
        value=measured,
        samples=len(values),
    )


def compare(
    name: str,
    before: Sequence[float],
    after: Sequence[float],
    *,
    direction: str,
    min_effect: float,
    alpha: float,
) -> Measurement:
    """Failed when the metric moved in the bad ``direction`` by at least ``min_effect``
    (relative change of the median) and a Mann-Whitney U test finds the shift significant."""
    if len(before) < MIN_SAMPLES or len(after) < MIN_SAMPLES:
        return Measurement(
            name,
            "Inconclusive",
            f"need {MIN_SAMPLES}+ points before and after, have {len(before)} and {len(after)}",
            samples=len(before) + len(after),
        )
    from scipy.stats import mannwhitneyu

    alternative = "greater" if direction == "increase" else "less"
    p_value = float(mannwhitneyu(after, before, alternative=alternative).pvalue)
    base, now = statistics.median(before), statistics.median(after)
    effect = (now - base) / abs(base) if base else (math.inf if now != base else 0.0)
    bad_move = effect >= min_effect if direction == "increase" else -effect >= min_effect
    failed = bad_move and p_value < alpha
    return Measurement(
        name,
        "Failed" if failed else "Successful",
        f"median {base:.6g} -> {now:.6g} ({effect:+.1%}), Mann-Whitney p = {p_value:.3g}",
        value=now,
        samples=len(before) + len(after),
        p_value=p_value,
        effect=effect if math.isfinite(effect) else None,
    )


def verdict(measurements: Sequence[Measurement | dict[str, Any]], failure_limit: int) -> bool:
    """True while the analysis holds: failures do not exceed the limit."""
    failures = sum(
        1
        for m in measurements
        if (m.result if isinstance(m, Measurement) else m.get("result")) == "Failed"
    )
    return failures <= failure_limit
