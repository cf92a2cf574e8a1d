"""Cron expressions and time zones as configuration stores them, checked before they are kept.

A schedule that parses but never fires (``0 0 30 2 *``) makes croniter raise whenever it is
evaluated, so a stored one would break every later deploy or scheduler tick: refuse it on write.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo, available_timezones

from croniter import CroniterBadCronError, CroniterBadDateError, CroniterError, croniter
from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

ALIASES = frozenset(
    {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
)
# A cron that fires less than once a year is almost always a mistake (Feb 30, Apr 31), and
# croniter's search for the next fire is bounded by the same horizon, so the check is fast.
HORIZON = timedelta(days=366)


def cron_problem(expr: object, *, now: datetime | None = None) -> str | None:
    """Why ``expr`` is not a five-field cron firing within a year from ``now``; None if it is."""
    shape = _shape_problem(expr)
    if shape or not isinstance(expr, str):
        return shape
    text = expr.strip()
    start = now or datetime.now(UTC)
    try:
        nxt: datetime = croniter(text, start, max_years_between_matches=1).get_next(datetime)
    except CroniterBadDateError:
        return f"{expr!r} never fires within a year"
    except (CroniterBadCronError, CroniterError, ValueError, KeyError, TypeError) as exc:
        return f"{expr!r} is not a cron expression ({str(exc)[:120]})"
    if nxt - start > HORIZON:
        return f"{expr!r} never fires within a year"
    return None


def _shape_problem(expr: object) -> str | None:
    if not isinstance(expr, str) or not expr.strip():
        return "must be a cron expression like '0 3 * * *'"
    text = expr.strip()
    if len(text) > 100:
        return "a cron expression is at most 100 characters"
    if text.lower() not in ALIASES and len(text.split()) != 5:
        return (
            f"{expr!r} is not a five-field cron expression (minute hour day-of-month month "
            "day-of-week, or @hourly/@daily/@weekly/@monthly/@yearly)"
        )
    return None


@lru_cache(maxsize=1)
def known_zones() -> frozenset[str]:
    # The IANA names only: ZoneInfo would also open paths like 'localtime' or 'posixrules'.
    return frozenset(available_timezones() | {"UTC"})


def zone_problem(name: object) -> str | None:
    """Why ``name`` is not a known IANA time zone; None if it is."""
    if not isinstance(name, str) or name not in known_zones():
        return f"unknown time zone {name!r} (use an IANA name like 'Europe/Prague' or 'UTC')"
    try:
        ZoneInfo(name)
    except (ValueError, OSError):
        return f"unknown time zone {name!r}"
    return None


def _cron(value: str) -> str:
    problem = cron_problem(value)
    if problem:
        raise PydanticCustomError("cron", problem)
    return value.strip()


def _zone(value: str) -> str:
    problem = zone_problem(value)
    if problem:
        raise PydanticCustomError("time_zone", problem)
    return value


CronExpr = Annotated[
    str,
    Field(max_length=100, description="Five-field cron (or @daily …) that fires within a year"),
    AfterValidator(_cron),
]
TimeZoneName = Annotated[
    str,
    Field(max_length=64, description="IANA time zone, like Europe/Prague"),
    AfterValidator(_zone),
]
