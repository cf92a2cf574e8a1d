"""The four DORA metrics over one environment's deployments, computed from plain facts.

Pure: no database and no clock. The caller loads :class:`DeploymentFact` rows and passes a
period ``[since, until)``; :func:`compute_dora` returns a JSON-serialisable dict, which
``reports.documents`` renders as CSV and HTML.

What counts
    A deployment is *completed* when its ``completed_at`` lies in ``[since, until)``, its status
    is ``success``, ``failed`` or ``rolled_back``, and no user cancelled it. Everything else
    (pending, building, deploying, cancelled, or finished outside the period) is left out of
    every figure. A cancellation is a person's decision, not a change failure.

    ``completed_at`` must be when the deployment itself finished. A ``rolled_back`` deployment
    keeps the time at which it succeeded or failed, not the later time at which its rollback
    changed its status. If you pass the later time, its restore time and lead time are wrong.

The four figures (the fourkeys definitions, without its counting bug)
    *Deployment frequency*: completed deployments that reached production, meaning status
    ``success`` or ``rolled_back``, because a deployment that was rolled back had been
    deployed. ``failed`` ones do not count. ``per_day`` is that count divided by the length of
    the period in days. The bucket follows fourkeys: ``daily`` when the median calendar week
    has at least 3 distinct UTC days with a deployment; ``weekly`` when it has at least 1;
    ``monthly`` when the median calendar month has at least 1 week with a deployment;
    otherwise ``yearly``. With no deployment at all the bucket is None.

    *Lead time for changes*: the median of ``completed_at - commit_timestamp`` over the same
    deployments. Values that are zero or negative are dropped: they come from skewed clocks or
    from commit dates that were rewritten (rebase, amend), and they are not real lead times.

    *Change failure rate*: the number of distinct completed deployments with status ``failed``
    or ``rolled_back``, divided by the number of distinct completed deployments. fourkeys
    counts rows of a deployments-by-incidents join, so a deployment linked to two incidents
    counts twice and its rate can go above the truth. Here the facts are first deduplicated by
    id. When an id appears more than once, the last row given wins.

    *Time to restore*: measured over restoration *episodes*, not over incidents. Walking the
    completed deployments in ``completed_at`` order (ties broken by ``created_at``, then id),
    a failure opens an episode if none is open, further failures join the open episode, and
    the next ``success`` closes it. Failures in a row are therefore one outage, not several
    overlapping ones. An episode still open at ``until`` is reported as ``unrestored`` and is
    not in the median: a lower bound would drag the median down. An episode whose failure
    came before ``since`` cannot be seen, so the success that ends it restores nothing here.

Weeks and medians
    Weeks are calendar weeks in UTC, starting on Monday. Every week that overlaps the period is
    included, even a partial week at either end, so the weekly table and the frequency bucket
    use the same weeks. Weeks and months without a deployment take part in the medians as
    zeros, because a quiet week is a real observation. Each week of the weekly series repeats
    the figures over the deployments completed in that week. A restore episode belongs to the
    week in which it closes.

Wherever there is nothing to measure, the value is None, never a 0 that looks like a
measurement.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Final

from shipboard.core.time import ensure_utc

COMPLETED_STATUSES: Final = frozenset({"success", "failed", "rolled_back"})
DEPLOYED_STATUSES: Final = frozenset({"success", "rolled_back"})
FAILURE_STATUSES: Final = frozenset({"failed", "rolled_back"})

DAY_SECONDS: Final = 86_400
DAILY_MIN_DAYS_PER_WEEK: Final = 3
LEAD_TIME_BUCKETS: Final[tuple[tuple[int, str], ...]] = (
    (DAY_SECONDS, "less_than_one_day"),
    (7 * DAY_SECONDS, "less_than_one_week"),
    (30 * DAY_SECONDS, "less_than_one_month"),
    (180 * DAY_SECONDS, "less_than_six_months"),
)
LEAD_TIME_LONGEST_BUCKET: Final = "more_than_six_months"

WEEKLY_FIELDS: Final = (
    "week_start",
    "deployments",
    "days_with_deployment",
    "lead_time_median_seconds",
    "change_failure_rate",
    "failed",
    "completed",
    "time_to_restore_median_seconds",
    "restorations",
)


@dataclass(frozen=True)
class DeploymentFact:
    id: str
    status: str  # pending|building|deploying|success|failed|rolled_back
    created_at: datetime  # tz-aware UTC
    completed_at: datetime | None
    commit_timestamp: datetime | None
    cancelled: bool = False  # cancelled by a user: not a change failure, excluded from all figures


@dataclass(frozen=True)
class _Completed:
    """A fact that counts, with UTC timestamps and a ``completed_at`` that is known to be set."""

    id: str
    status: str
    created_at: datetime
    completed_at: datetime
    commit_timestamp: datetime | None

    @property
    def deployed(self) -> bool:
        return self.status in DEPLOYED_STATUSES

    @property
    def failure(self) -> bool:
        return self.status in FAILURE_STATUSES

    @property
    def lead_time_seconds(self) -> float | None:
        if not self.deployed or self.commit_timestamp is None:
            return None
        seconds = (self.completed_at - self.commit_timestamp).total_seconds()
        return seconds if seconds > 0 else None


@dataclass(frozen=True)
class _Restoration:
    closed_at: datetime
    seconds: float


def compute_dora(
    facts: Iterable[DeploymentFact], *, environment: str, since: datetime, until: datetime
) -> dict[str, Any]:
    """The four DORA figures and their weekly series for deployments completed in
    ``[since, until)``. Raises ValueError for naive datetimes or an empty period."""
    since = ensure_utc(since)
    until = ensure_utc(until)
    if since >= until:
        raise ValueError("since must be before until")

    completed = _completed(_dedupe(facts), since, until)
    restorations, unrestored = _restorations(completed)
    weeks = _weeks_overlapping(since, until)

    completed_by_week: dict[date, list[_Completed]] = {week: [] for week in weeks}
    for deployment in completed:
        completed_by_week[_week_start(deployment.completed_at.date())].append(deployment)
    restorations_by_week: dict[date, list[_Restoration]] = {week: [] for week in weeks}
    for restoration in restorations:
        restorations_by_week[_week_start(restoration.closed_at.date())].append(restoration)
    weekly = [
        _week_row(week, completed_by_week[week], restorations_by_week[week]) for week in weeks
    ]

    deployed = [d for d in completed if d.deployed]
    lead_times = _lead_times(completed)
    lead_time_median = _median(lead_times)
    failed = sum(1 for d in completed if d.failure)
    period_days = (until - since).total_seconds() / DAY_SECONDS
    return {
        "environment": environment,
        "since": since.isoformat(),
        "until": until.isoformat(),
        "deployment_frequency": {
            "per_day": len(deployed) / period_days,
            "bucket": _frequency_bucket(deployed, weekly, _months_overlapping(since, until)),
            "deployments": len(deployed),
        },
        "lead_time_for_changes": {
            "median_seconds": lead_time_median,
            "bucket": lead_time_bucket(lead_time_median),
            "deployments": len(lead_times),
        },
        "change_failure_rate": {
            "value": failed / len(completed) if completed else None,
            "failed": failed,
            "completed": len(completed),
        },
        "time_to_restore": {
            "median_seconds": _median([r.seconds for r in restorations]),
            "restorations": len(restorations),
            "unrestored": 1 if unrestored else 0,
        },
        "weekly": weekly,
    }


def lead_time_bucket(median_seconds: float | None) -> str | None:
    """Each bucket's upper bound is exclusive: exactly one day is ``less_than_one_week``."""
    if median_seconds is None:
        return None
    for upper, name in LEAD_TIME_BUCKETS:
        if median_seconds < upper:
            return name
    return LEAD_TIME_LONGEST_BUCKET


def _dedupe(facts: Iterable[DeploymentFact]) -> list[DeploymentFact]:
    # A join with incidents repeats a deployment once per incident. Keeping the last row means
    # a caller that appends newer rows gets the newest state.
    by_id: dict[str, DeploymentFact] = {}
    for fact in facts:
        by_id[fact.id] = fact
    return list(by_id.values())


def _completed(
    facts: Iterable[DeploymentFact], since: datetime, until: datetime
) -> list[_Completed]:
    kept = []
    for fact in facts:
        if fact.cancelled or fact.status not in COMPLETED_STATUSES or fact.completed_at is None:
            continue
        completed_at = ensure_utc(fact.completed_at)
        if not since <= completed_at < until:
            continue
        kept.append(
            _Completed(
                id=fact.id,
                status=fact.status,
                created_at=ensure_utc(fact.created_at),
                completed_at=completed_at,
                commit_timestamp=(
                    ensure_utc(fact.commit_timestamp) if fact.commit_timestamp else None
                ),
            )
        )
    # A total order, so the episode walk does not depend on the order the caller used.
    kept.sort(key=lambda d: (d.completed_at, d.created_at, d.id))
    return kept


def _restorations(completed: Sequence[_Completed]) -> tuple[list[_Restoration], bool]:
    """Closed episodes in walk order, and whether one is still open at the end."""
    closed: list[_Restoration] = []
    opened_at: datetime | None = None
    for deployment in completed:
        if deployment.failure:
            if opened_at is None:
                opened_at = deployment.completed_at
        elif opened_at is not None:
            closed.append(
                _Restoration(
                    deployment.completed_at, (deployment.completed_at - opened_at).total_seconds()
                )
            )
            opened_at = None
    return closed, opened_at is not None


def _lead_times(completed: Iterable[_Completed]) -> list[float]:
    return [s for d in completed if (s := d.lead_time_seconds) is not None]


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def _week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def _last_day(until: datetime) -> date:
    # The period is half-open: when it ends at midnight, that day is not part of it.
    return (until - timedelta(microseconds=1)).date()


def _weeks_overlapping(since: datetime, until: datetime) -> list[date]:
    week, last = _week_start(since.date()), _week_start(_last_day(until))
    weeks = []
    while week <= last:
        weeks.append(week)
        week += timedelta(days=7)
    return weeks


def _months_overlapping(since: datetime, until: datetime) -> list[tuple[int, int]]:
    year, month = since.year, since.month
    last_day = _last_day(until)
    months = []
    while (year, month) <= (last_day.year, last_day.month):
        months.append((year, month))
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def _frequency_bucket(
    deployed: Sequence[_Completed],
    weekly: Sequence[dict[str, Any]],
    months: Sequence[tuple[int, int]],
) -> str | None:
    if not deployed:
        return None
    days_per_week = statistics.median(row["days_with_deployment"] for row in weekly)
    if days_per_week >= DAILY_MIN_DAYS_PER_WEEK:
        return "daily"
    if days_per_week >= 1:
        return "weekly"
    # A week that straddles two months counts for each month in which it had a deployment.
    weeks_per_month: dict[tuple[int, int], set[date]] = {month: set() for month in months}
    for deployment in deployed:
        day = deployment.completed_at.date()
        weeks_per_month[(day.year, day.month)].add(_week_start(day))
    if statistics.median(len(weeks) for weeks in weeks_per_month.values()) >= 1:
        return "monthly"
    return "yearly"


def _week_row(
    week: date, completed: Sequence[_Completed], restorations: Sequence[_Restoration]
) -> dict[str, Any]:
    deployed = [d for d in completed if d.deployed]
    failed = sum(1 for d in completed if d.failure)
    return {
        "week_start": week.isoformat(),
        "deployments": len(deployed),
        "days_with_deployment": len({d.completed_at.date() for d in deployed}),
        "lead_time_median_seconds": _median(_lead_times(completed)),
        "change_failure_rate": failed / len(completed) if completed else None,
        "failed": failed,
        "completed": len(completed),
        "time_to_restore_median_seconds": _median([r.seconds for r in restorations]),
        "restorations": len(restorations),
    }


def totals_row(report: dict[str, Any]) -> dict[str, Any]:
    """The whole period as one row shaped like a week of ``weekly`` (``week_start`` "total")."""
    return {
        "week_start": "total",
        "deployments": report["deployment_frequency"]["deployments"],
        # Weeks do not share days, so the weekly counts add up to the distinct days overall.
        "days_with_deployment": sum(row["days_with_deployment"] for row in report["weekly"]),
        "lead_time_median_seconds": report["lead_time_for_changes"]["median_seconds"],
        "change_failure_rate": report["change_failure_rate"]["value"],
        "failed": report["change_failure_rate"]["failed"],
        "completed": report["change_failure_rate"]["completed"],
        "time_to_restore_median_seconds": report["time_to_restore"]["median_seconds"],
        "restorations": report["time_to_restore"]["restorations"],
    }
