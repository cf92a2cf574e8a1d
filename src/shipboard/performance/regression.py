"""Regression detection for benchmark series. Pure: the service hands in a series' history.

A *series* is one benchmark measured again and again: the same name, environment and tags, where
the tags that change on every run (``version``, ``commit``) do not count. For the newest result of
a series this module says ``ok``, ``regression`` or ``insufficient_data`` — never a silent pass
when there is too little history to judge.

Decision order (issue #7, DESIGN.md §5 "Performance"):

1. The result carries a ``threshold`` → that decides alone: a regression when the value is past it
   in the worse direction. An explicit limit beats any statistics.
2. Otherwise the metric's *model* (configured per name pattern, Bencher's models as reference):

   - ``t_test`` (default): the last ``n`` results against the ``window`` results before them, a
     two-sided Welch t-test (or a one-sample test against ``benchmark`` when one is given); a
     regression when p < ``p_value`` *and* the mean moved more than ``min_change_pct`` in the
     worse direction. Both conditions, because with enough samples a 0.1 % shift is significant
     but nobody cares, and a 20 % jump on two noisy points is not evidence.
   - ``z_score``: the newest value's z-score against the window (mean and standard deviation);
     a regression past ``z`` standard deviations in the worse direction and ``min_change_pct``.
   - ``percentage``: worse than the baseline by more than ``percentage`` percent.
   - ``static``: past the configured ``limit``.

The baseline is ``benchmark`` when given, else the median of the previous ``window`` results.
Lower is better unless the unit is a rate (``ops/s``, ``req/s``, ``rps``, ``%`` as pass rates …) or
the metric's settings say ``direction: higher``.
"""

from __future__ import annotations

import math
import statistics
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

from scipy import stats

from shipboard.core import patterns

MODELS = ("t_test", "z_score", "percentage", "static")
# Tags that identify a run rather than the thing measured.
RUN_TAGS = frozenset({"version", "commit", "commit_sha"})
HIGHER_IS_BETTER_UNITS = frozenset(
    {"ops/s", "op/s", "req/s", "requests/s", "rps", "iterations/s", "%", "pass", "hz", "1/s"}
)
FAILURE_NAMES = ("*fail*", "*error*")
Direction = Literal["lower_is_better", "higher_is_better"]
Status = Literal["ok", "regression", "insufficient_data"]


@dataclass(frozen=True)
class Rule:
    """How one metric name is judged; ``config.performance.rules`` entries override fields."""

    model: str = "t_test"
    direction: Literal["lower", "higher"] | None = None
    window: int = 20
    n: int = 5
    min_samples: int = 5
    p_value: float = 0.01
    min_change_pct: float = 5.0
    percentage: float = 10.0
    z: float = 3.0
    limit: float | None = None
    match: str = "*"


@dataclass(frozen=True)
class Point:
    value: float
    benchmark: float | None = None
    threshold: float | None = None


@dataclass(frozen=True)
class Verdict:
    status: Status
    model: str
    direction: Direction
    value: float
    current: float
    baseline: float | None
    delta_pct: float | None
    p_value: float | None
    samples: int
    reason: str
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def regressed(self) -> bool:
        return self.status == "regression"


def rule_for(settings: dict[str, Any] | None, name: str) -> Rule:
    """The first rule of ``config.performance.rules`` whose ``match`` glob matches ``name``,
    with a ``higher_is_better`` name list also honoured; defaults otherwise."""
    settings = settings or {}
    base: dict[str, Any] = {}
    for entry in settings.get("rules") or []:
        if patterns.glob_matches(str(entry.get("match", "*")), name):
            base = {k: v for k, v in entry.items() if v is not None}
            break
    if any(patterns.glob_matches(str(p), name) for p in settings.get("higher_is_better") or []):
        base["direction"] = "higher"
    elif "direction" not in base and any(
        patterns.glob_matches(p, name.lower()) for p in FAILURE_NAMES
    ):
        # A failure or error rate in % is not a pass rate: fewer is better.
        base["direction"] = "lower"
    return Rule(**base)


def direction_of(unit: str, rule: Rule) -> Direction:
    if rule.direction == "higher":
        return "higher_is_better"
    if rule.direction == "lower":
        return "lower_is_better"
    return (
        "higher_is_better" if unit.strip().lower() in HIGHER_IS_BETTER_UNITS else "lower_is_better"
    )


def series_tags(tags: dict[str, str] | None) -> dict[str, str]:
    return {k: v for k, v in (tags or {}).items() if k not in RUN_TAGS}


def series_key(name: str, tags: dict[str, str] | None) -> str:
    """A stable text identity for (name, tags without run tags); sorted so order never matters."""
    parts = [name, *(f"{k}={v}" for k, v in sorted(series_tags(tags).items()))]
    return "\x1f".join(parts)


def _delta_pct(current: float, baseline: float | None) -> float | None:
    if baseline is None or baseline == 0:
        return None
    return (current - baseline) / abs(baseline) * 100.0


def _worse_by(
    delta_pct: float | None, current: float, baseline: float, direction: Direction
) -> float:
    """How much worse ``current`` is than ``baseline``, in percent (negative when better)."""
    if delta_pct is None:  # baseline 0: any move in the worse direction is infinitely worse
        diff = current - baseline if direction == "lower_is_better" else baseline - current
        return math.inf if diff > 0 else (-math.inf if diff < 0 else 0.0)
    return delta_pct if direction == "lower_is_better" else -delta_pct


def _welch(a: list[float], b: list[float]) -> float:
    """Two-sided Welch p-value; scipy gives NaN when both samples are constant."""
    if len(set(a)) == 1 and len(set(b)) == 1:
        return 0.0 if a[0] != b[0] else 1.0
    with warnings.catch_warnings():
        # Nearly constant samples make scipy warn about precision; the p-value is still usable.
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return 1.0 if math.isnan(p) else p


def _one_sample(a: list[float], mean: float) -> float:
    if len(set(a)) == 1:
        return 0.0 if a[0] != mean else 1.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(stats.ttest_1samp(a, mean).pvalue)
    return 1.0 if math.isnan(p) else p


@dataclass(frozen=True)
class _Case:
    """One evaluation's inputs, shared by the model functions."""

    history: list[Point]
    unit: str
    rule: Rule
    direction: Direction

    @property
    def newest(self) -> Point:
        return self.history[-1]

    @property
    def previous(self) -> list[float]:
        return [p.value for p in self.history[:-1]][-self.rule.window :]

    @property
    def baseline(self) -> float | None:
        if self.newest.benchmark is not None:
            return self.newest.benchmark
        previous = self.previous
        return statistics.median(previous) if previous else None

    @property
    def worse_word(self) -> str:
        return "above" if self.direction == "lower_is_better" else "below"

    def past(self, value: float, limit: float) -> bool:
        return value > limit if self.direction == "lower_is_better" else value < limit

    def verdict(
        self,
        status: Status,
        model: str,
        reason: str,
        *,
        current: float | None = None,
        baseline: float | None = None,
        p: float | None = None,
        samples: int = 0,
        **details: Any,
    ) -> Verdict:
        current = self.newest.value if current is None else current
        return Verdict(
            status=status,
            model=model,
            direction=self.direction,
            value=self.newest.value,
            current=current,
            baseline=baseline,
            delta_pct=_delta_pct(current, baseline),
            p_value=p,
            samples=samples,
            reason=reason,
            details=details,
        )


def evaluate(history: list[Point], *, unit: str, rule: Rule) -> Verdict:
    """Judge the newest point of ``history`` (oldest first) against the points before it."""
    if not history:
        raise ValueError("history must hold at least the newest result")
    case = _Case(history, unit, rule, direction_of(unit, rule))
    if case.newest.threshold is not None:
        return _threshold(case, case.newest.threshold)
    if rule.model == "static":
        return _static(case)
    if rule.model == "t_test":
        return _t_test(case)
    if rule.model in ("percentage", "z_score"):
        return _against_window(case)
    raise ValueError(f"unknown model {rule.model!r}; expected one of {MODELS}")


def _threshold(case: _Case, threshold: float) -> Verdict:
    value, past = case.newest.value, case.past(case.newest.value, threshold)
    return case.verdict(
        "regression" if past else "ok",
        "threshold",
        f"{value:g} {case.unit} is {'' if past else 'not '}{case.worse_word} the threshold "
        f"{threshold:g}",
        baseline=case.baseline,
        samples=len(case.previous),
        threshold=threshold,
    )


def _static(case: _Case) -> Verdict:
    limit = case.rule.limit
    if limit is None:
        return case.verdict("insufficient_data", "static", "the static model has no limit set")
    value, past = case.newest.value, case.past(case.newest.value, limit)
    return case.verdict(
        "regression" if past else "ok",
        "static",
        f"{value:g} {case.unit} is {'' if past else 'not '}{case.worse_word} the limit {limit:g}",
        baseline=case.baseline,
        limit=limit,
    )


def _t_test(case: _Case) -> Verdict:
    rule, benchmark = case.rule, case.newest.benchmark
    recent = [p.value for p in case.history[-rule.n :]]
    window = [p.value for p in case.history[: -rule.n]][-rule.window :]
    if benchmark is not None:
        if len(recent) < max(2, min(rule.n, rule.min_samples)):
            return case.verdict(
                "insufficient_data",
                "t_test",
                f"{len(recent)} result(s); the t-test needs {rule.n}",
                baseline=benchmark,
                samples=len(recent),
            )
        p, base, samples = _one_sample(recent, benchmark), benchmark, len(recent)
    else:
        if len(recent) < rule.n or len(window) < rule.min_samples:
            return case.verdict(
                "insufficient_data",
                "t_test",
                f"{len(window)} baseline result(s) and {len(recent)} recent; the t-test "
                f"needs {rule.min_samples} and {rule.n}",
                baseline=statistics.median(window) if window else None,
                samples=len(window),
            )
        p, base, samples = _welch(recent, window), statistics.median(window), len(window)
    current = statistics.fmean(recent)
    worse = _worse_by(_delta_pct(current, base), current, base, case.direction)
    regressed = p < rule.p_value and worse > rule.min_change_pct
    return case.verdict(
        "regression" if regressed else "ok",
        "t_test",
        f"mean of the last {len(recent)} is {current:g} {case.unit}, {_fmt_pct(worse)} worse "
        f"than the baseline {base:g} (p = {p:.3g}; a regression needs p < {rule.p_value:g} and "
        f"> {rule.min_change_pct:g} %)",
        current=current,
        baseline=base,
        p=p,
        samples=samples,
    )


def _against_window(case: _Case) -> Verdict:
    """The percentage and z-score models: the newest value against the previous window."""
    rule, previous, value = case.rule, case.previous, case.newest.value
    baseline = case.baseline
    if len(previous) < rule.min_samples or baseline is None:
        return case.verdict(
            "insufficient_data",
            rule.model,
            f"{len(previous)} previous result(s); the {rule.model} model needs {rule.min_samples}",
            baseline=baseline,
            samples=len(previous),
        )
    worse = _worse_by(_delta_pct(value, baseline), value, baseline, case.direction)
    if rule.model == "percentage":
        return case.verdict(
            "regression" if worse > rule.percentage else "ok",
            "percentage",
            f"{value:g} {case.unit} is {_fmt_pct(worse)} worse than the baseline {baseline:g} "
            f"(limit {rule.percentage:g} %)",
            baseline=baseline,
            samples=len(previous),
        )
    mean = (
        case.newest.benchmark if case.newest.benchmark is not None else statistics.fmean(previous)
    )
    sd = statistics.stdev(previous)
    if sd == 0:
        z = 0.0 if value == mean else math.copysign(math.inf, value - mean)
    else:
        z = (value - mean) / sd
    z_worse = z if case.direction == "lower_is_better" else -z
    return case.verdict(
        "regression" if z_worse > rule.z and worse > rule.min_change_pct else "ok",
        "z_score",
        f"{value:g} {case.unit} is {z_worse:.2f} standard deviations worse than the mean "
        f"{mean:g} (limit {rule.z:g}), {_fmt_pct(worse)} from the baseline {baseline:g}",
        baseline=baseline,
        p=float(stats.norm.sf(z_worse)),
        samples=len(previous),
        z=z_worse if math.isfinite(z_worse) else None,
    )


def _fmt_pct(value: float) -> str:
    return f"{value:.1f} %" if math.isfinite(value) else ("∞ %" if value > 0 else "-∞ %")
