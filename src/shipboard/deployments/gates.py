"""Promotion gates. Pure: the service gathers the facts, this decides, with reasons."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter


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


def validate_freeze_windows(windows: Any) -> list[str]:
    """Problems with a ``config.freeze_windows`` value, for a clear 422 on write."""
    if not isinstance(windows, list):
        return ["freeze_windows must be a list"]
    problems = []
    for i, window in enumerate(windows):
        if not isinstance(window, dict):
            problems.append(f"freeze_windows[{i}] must be an object")
            continue
        if not croniter.is_valid(str(window.get("cron", ""))):
            problems.append(f"freeze_windows[{i}].cron is not a cron expression")
        duration = window.get("duration_minutes")
        if not isinstance(duration, int | float) or duration <= 0:
            problems.append(f"freeze_windows[{i}].duration_minutes must be a positive number")
        try:
            ZoneInfo(str(window.get("timezone") or "UTC"))
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"freeze_windows[{i}].timezone is not a known time zone")
    return problems


def freezes(facts: GateFacts) -> list[GateResult]:
    """The deploy freeze and the freeze windows: the gates a person's rollback also passes."""
    results = []
    frozen = feature(facts, "deploy_freeze")
    results.append(
        GateResult(
            "deploy_freeze", not frozen, "deploy freeze is on" if frozen else "no deploy freeze"
        )
    )
    window = active_freeze(facts.freeze_windows, facts.now) if facts.freeze_windows else None
    results.append(
        GateResult(
            "freeze_window",
            window is None,
            f"inside freeze window {window['cron']!r} ({window.get('timezone') or 'UTC'}) "
            f"until {window['ends_at']}"
            if window
            else "outside every freeze window",
            {"window": window} if window else {},
        )
    )
    return results


def evaluate(facts: GateFacts) -> list[GateResult]:
    results = freezes(facts)
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
