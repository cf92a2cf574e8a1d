"""Promotion gates. Pure: the service gathers the facts, this decides, with reasons."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from shipboard.core.comparisons import OPS
from shipboard.core.errors import format_loc

# A promotion check's gate lists at most this many series in ``measured`` (the count is exact).
MAX_SHOWN_SERIES = 20


@dataclass(frozen=True)
class StoreCheck:
    """One ``config.promotion_checks[]`` entry with what the metrics store answered: the
    samples (labels, value), or why there are none."""

    name: str
    query: str  # as asked: the variables filled in
    op: str
    value: float
    answer: Sequence[tuple[Mapping[str, str], float]] | str


@dataclass(frozen=True)
class GateFacts:
    environment: str
    version: str
    commit_sha: str
    features: dict[str, bool]
    freeze_windows: list[dict[str, Any]]
    now: datetime
    staging_success: bool
    unresolved_critical: int
    regressions: list[str] = field(default_factory=list)
    overdue_high: int = 0
    # What the validator refuses in the stored environment ([{loc, msg}]): such configuration
    # was written by an older version or edited in the database, and it blocks (fail closed).
    config_problems: list[dict[str, Any]] = field(default_factory=list)
    store_checks: list[StoreCheck] = field(default_factory=list)


@dataclass(frozen=True)
class GateResult:
    gate: str
    passed: bool
    reason: str
    measured: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "gate": self.gate,
            "passed": self.passed,
            "reason": self.reason,
            "measured": self.measured,
        }


# Defaults for features an environment has not set (DESIGN.md: on for production).
DEFAULT_ON_IN_PRODUCTION = ("require_staging_success", "block_on_critical_findings")


def feature(facts: GateFacts, name: str) -> bool:
    if name in facts.features:
        return bool(facts.features[name])
    return facts.environment == "production" and name in DEFAULT_ON_IN_PRODUCTION


def active_freeze(windows: list[dict[str, Any]], now: datetime) -> dict[str, Any] | None:
    """The freeze window covering ``now``, evaluated in each window's own timezone."""
    for window in windows:
        zone = ZoneInfo(str(window.get("timezone") or "UTC"))
        local_now = now.astimezone(zone)
        duration = timedelta(minutes=float(window["duration_minutes"]))
        # The latest start at or before now; croniter walks in the window's local time.
        start: datetime = croniter(str(window["cron"]), local_now + timedelta(seconds=1)).get_prev(
            datetime
        )
        if start <= local_now < start + duration:
            return {
                **window,
                "started_at": start.isoformat(),
                "ends_at": (start + duration).isoformat(),
            }
    return None


FIX_HINT = "fix it with `shipboard env set` or PATCH /api/v1/environments/{name}"


def _problem_text(problems: list[dict[str, Any]]) -> str:
    shown = "; ".join(f"{format_loc(p['loc'])}: {p['msg']}" for p in problems[:5])
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return shown + more


def _freeze_gate(facts: GateFacts) -> GateResult:
    """Inside a freeze window → blocked; windows that cannot be evaluated block too."""
    bad = [p for p in facts.config_problems if list(p["loc"])[:2] == ["config", "freeze_windows"]]
    hint = FIX_HINT.format(name=facts.environment)
    if bad:
        return GateResult(
            "freeze_window",
            False,
            f"cannot evaluate the freeze windows: {_problem_text(bad)}; {hint}",
            {"problems": bad},
        )
    try:
        window = active_freeze(facts.freeze_windows, facts.now) if facts.freeze_windows else None
    # Belt and braces: the validator passed them, but a window that still fails must block.
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        return GateResult(
            "freeze_window",
            False,
            f"cannot evaluate config.freeze_windows ({str(exc)[:200]}); {hint}",
        )
    return GateResult(
        "freeze_window",
        window is None,
        f"inside freeze window {window['cron']!r} ({window.get('timezone') or 'UTC'}) "
        f"until {window['ends_at']}"
        if window
        else "outside every freeze window",
        {"window": window} if window else {},
    )


def freezes(facts: GateFacts) -> list[GateResult]:
    """The deploy freeze and the freeze windows: the gates a person's rollback also passes."""
    results = []
    frozen = feature(facts, "deploy_freeze")
    results.append(
        GateResult(
            "deploy_freeze", not frozen, "deploy freeze is on" if frozen else "no deploy freeze"
        )
    )
    results.append(_freeze_gate(facts))
    return results


def evaluate(facts: GateFacts) -> list[GateResult]:
    results = []
    if facts.config_problems:
        results.append(
            GateResult(
                "configuration",
                False,
                "the stored configuration is invalid: "
                f"{_problem_text(facts.config_problems)}; "
                + FIX_HINT.format(name=facts.environment),
                {"problems": facts.config_problems},
            )
        )
    results += freezes(facts)
    if feature(facts, "require_staging_success"):
        results.append(
            GateResult(
                "require_staging_success",
                facts.staging_success,
                f"version {facts.version} at {facts.commit_sha} succeeded in staging"
                if facts.staging_success
                else f"version {facts.version} at {facts.commit_sha} never succeeded in staging",
            )
        )
    if feature(facts, "block_on_critical_findings"):
        results.append(
            GateResult(
                "block_on_critical_findings",
                facts.unresolved_critical == 0,
                f"{facts.unresolved_critical} unresolved critical finding(s) in the latest scans",
                {"unresolved_critical": facts.unresolved_critical},
            )
        )
    if feature(facts, "block_on_overdue_high"):
        results.append(
            GateResult(
                "block_on_overdue_high",
                facts.overdue_high == 0,
                f"{facts.overdue_high} open high finding(s) past their SLA",
                {"overdue_high": facts.overdue_high},
            )
        )
    results += [store_check(check) for check in facts.store_checks]
    results.append(
        GateResult(
            "performance_regressions",
            not facts.regressions,
            "open regressions in staging: " + ", ".join(facts.regressions)
            if facts.regressions
            else "no open performance regression in staging for this version",
            {"regressions": facts.regressions},
        )
    )
    return results


def store_check(check: StoreCheck) -> GateResult:
    """A promotion check passes when the store answered and every sample satisfies
    ``op value``; no answer, no sample or a NaN blocks (fail closed). ``measured`` holds the
    query as asked, the condition and the values behind the verdict."""
    gate = f"promotion_check:{check.name}"
    condition = f"{check.op} {check.value:g}"
    measured: dict[str, Any] = {"query": check.query, "condition": condition}
    if isinstance(check.answer, str):
        return GateResult(gate, False, f"{check.name}: cannot check: {check.answer}", measured)
    if not check.answer:
        return GateResult(gate, False, f"{check.name}: the query returned no value", measured)
    failing = [(labels, v) for labels, v in check.answer if not OPS[check.op](v, check.value)]
    shown = check.answer[:MAX_SHOWN_SERIES]
    measured |= {
        # NaN and ±Inf are named in the reason; stored JSON (jsonb) cannot hold them.
        "values": [_finite(v) for _, v in shown],
        "series": [{"labels": dict(labels), "value": _finite(v)} for labels, v in shown],
        "series_count": len(check.answer),
    }
    if len(check.answer) == 1:
        (_, measured_value) = check.answer[0]
        holds = "holds" if not failing else "does not hold"
        return GateResult(
            gate,
            not failing,
            f"{check.name}: result {measured_value:.6g}; {condition} {holds}",
            measured,
        )
    if not failing:
        return GateResult(
            gate, True, f"{check.name}: all {len(check.answer)} series {condition}", measured
        )
    named = ", ".join(f"{_series_name(labels)} = {v:.6g}" for labels, v in failing[:5])
    more = f" (and {len(failing) - 5} more)" if len(failing) > 5 else ""
    return GateResult(
        gate,
        False,
        f"{check.name}: {len(failing)} of {len(check.answer)} series not {condition}: "
        f"{named}{more}",
        measured,
    )


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _series_name(labels: Mapping[str, str]) -> str:
    return "{" + ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
