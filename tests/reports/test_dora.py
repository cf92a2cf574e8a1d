"""DORA metrics (pure): histories with known timestamps, and hand-computed figures."""

from __future__ import annotations

import csv
import io
import itertools
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipboard.reports import documents
from shipboard.reports.documents import dora_csv as to_csv
from shipboard.reports.dora import DeploymentFact, compute_dora, lead_time_bucket


def to_html(report: dict[str, Any]) -> str:
    return documents.to_html("dora", report)


MONDAY = datetime(2024, 1, 1, tzinfo=UTC)  # 2024-01-01 was a Monday
DAY = 86_400
HOUR = 3_600


def at(day: float, hour: float = 0) -> datetime:
    return MONDAY + timedelta(days=day, hours=hour)


def fact(
    id: str,
    status: str,
    completed_at: datetime | None,
    *,
    created_at: datetime | None = None,
    commit_timestamp: datetime | None = None,
    cancelled: bool = False,
) -> DeploymentFact:
    if created_at is None:
        assert completed_at is not None
        created_at = completed_at - timedelta(minutes=10)
    return DeploymentFact(
        id=id,
        status=status,
        created_at=created_at,
        completed_at=completed_at,
        commit_timestamp=commit_timestamp,
        cancelled=cancelled,
    )


def dora(facts: list[DeploymentFact], *, days: float = 7, since: datetime = MONDAY) -> Any:
    return compute_dora(facts, environment="prod", since=since, until=since + timedelta(days=days))


def successes_on(days: list[float]) -> list[DeploymentFact]:
    return [fact(f"s{i}", "success", at(day, 12)) for i, day in enumerate(days)]


# --- the rollback story, duplicates, episodes ------------------------------------------------


def test_a_failed_deployment_rolled_back_counts_once_and_restores_at_the_rollback() -> None:
    report = dora(
        [
            fact("before", "success", at(1, 9)),
            # It failed at 10:00 on Wednesday. Its rollback finished at 10:30 and turned its
            # status into rolled_back, so it is passed with that status, once.
            fact("bad", "rolled_back", at(2, 10), commit_timestamp=at(2, 8)),
            fact("rollback", "success", at(2, 10.5)),
        ]
    )
    assert report["change_failure_rate"] == {"value": 1 / 3, "failed": 1, "completed": 3}
    assert report["time_to_restore"] == {
        "median_seconds": 1800.0,
        "restorations": 1,
        "unrestored": 0,
    }
    # The rolled-back deployment did reach production, so frequency counts it.
    assert report["deployment_frequency"]["deployments"] == 3
    # Only "bad" has a commit timestamp: 10:00 - 08:00.
    assert report["lead_time_for_changes"] == {
        "median_seconds": 7200.0,
        "bucket": "less_than_one_day",
        "deployments": 1,
    }


def test_the_same_id_passed_twice_counts_once() -> None:
    ok = fact("ok", "success", at(1))
    bad = fact("bad", "failed", at(2, 10))
    # A deployments-by-incidents join gives "bad" once per incident. Counting rows, as fourkeys
    # does, would make that 2 failures in 3 deployments. The truth is 1 in 2.
    joined = dora([ok, bad, bad])
    assert joined == dora([ok, bad])
    assert joined["change_failure_rate"] == {"value": 0.5, "failed": 1, "completed": 2}
    assert joined["time_to_restore"]["unrestored"] == 1

    fixed = dora([ok, bad, bad, fact("fix", "success", at(2, 11))])
    assert fixed["change_failure_rate"] == {"value": 1 / 3, "failed": 1, "completed": 3}
    assert fixed["time_to_restore"] == {
        "median_seconds": 3600.0,
        "restorations": 1,
        "unrestored": 0,
    }


def test_the_last_row_of_an_id_wins() -> None:
    running = fact("d", "deploying", None, created_at=at(1))
    done = fact("d", "failed", at(1, 1), created_at=at(1))
    assert dora([running, done])["change_failure_rate"]["failed"] == 1
    assert dora([done, running])["change_failure_rate"] == {
        "value": None,
        "failed": 0,
        "completed": 0,
    }


def test_failures_in_a_row_are_one_episode() -> None:
    report = dora(
        [
            fact("s1", "success", at(0, 12)),
            fact("f1", "failed", at(1, 10)),  # opens the episode
            fact("f2", "failed", at(1, 12)),
            fact("r1", "rolled_back", at(1, 13)),
            fact("s2", "success", at(2, 10)),  # closes it: 24 h after f1
            fact("f3", "failed", at(3, 0)),
            fact("s3", "success", at(3, 1)),  # 1 h
        ]
    )
    assert report["time_to_restore"] == {
        # median(86400, 3600) = (86400 + 3600) / 2
        "median_seconds": 45000.0,
        "restorations": 2,
        "unrestored": 0,
    }
    assert report["change_failure_rate"] == {"value": 4 / 7, "failed": 4, "completed": 7}


def test_an_unrestored_failure() -> None:
    only_open = dora([fact("s1", "success", at(0)), fact("f1", "failed", at(1))])
    assert only_open["time_to_restore"] == {
        "median_seconds": None,
        "restorations": 0,
        "unrestored": 1,
    }
    closed_then_open = dora(
        [
            fact("f1", "failed", at(1)),
            fact("s1", "success", at(1, 2)),
            fact("f2", "rolled_back", at(3)),
            fact("f3", "failed", at(4)),
        ]
    )
    assert closed_then_open["time_to_restore"] == {
        "median_seconds": 7200.0,
        "restorations": 1,
        "unrestored": 1,
    }


def test_ties_on_completed_at_are_broken_by_created_at_then_id() -> None:
    # Both finish at the same instant. The failure was created first, so it opens an episode
    # that the success then closes after 0 s.
    failure = fact("b", "failed", at(1), created_at=at(0, 1))
    success = fact("a", "success", at(1), created_at=at(0, 2))
    for order in ([failure, success], [success, failure]):
        assert dora(order)["time_to_restore"] == {
            "median_seconds": 0.0,
            "restorations": 1,
            "unrestored": 0,
        }
    # Same created_at: the ids decide, and "a" (the success) comes first.
    failure_same = fact("b", "failed", at(1), created_at=at(0, 1))
    success_same = fact("a", "success", at(1), created_at=at(0, 1))
    assert dora([failure_same, success_same])["time_to_restore"]["unrestored"] == 1


# --- lead time -------------------------------------------------------------------------------


def test_lead_time_ignores_negative_and_zero_values() -> None:
    report = dora(
        [
            fact("later", "success", at(1), commit_timestamp=at(1) + timedelta(seconds=60)),
            fact("same", "success", at(2), commit_timestamp=at(2)),
            fact("real", "success", at(3), commit_timestamp=at(3) - timedelta(seconds=3600)),
            fact("none", "success", at(4)),
            # Failed deployments never reached production and have no lead time.
            fact("failed", "failed", at(5), commit_timestamp=at(4)),
        ]
    )
    assert report["lead_time_for_changes"] == {
        "median_seconds": 3600.0,
        "bucket": "less_than_one_day",
        "deployments": 1,
    }
    assert report["deployment_frequency"]["deployments"] == 4

    nothing_valid = dora(
        [
            fact("later", "success", at(1), commit_timestamp=at(1, 1)),
            fact("same", "success", at(2), commit_timestamp=at(2)),
        ]
    )
    assert nothing_valid["lead_time_for_changes"] == {
        "median_seconds": None,
        "bucket": None,
        "deployments": 0,
    }
    assert nothing_valid["deployment_frequency"]["deployments"] == 2


@pytest.mark.parametrize(
    ("seconds", "bucket"),
    [
        (1, "less_than_one_day"),
        (86_399, "less_than_one_day"),
        (86_400, "less_than_one_week"),
        (7 * DAY - 1, "less_than_one_week"),
        (7 * DAY, "less_than_one_month"),
        (30 * DAY - 1, "less_than_one_month"),
        (30 * DAY, "less_than_six_months"),
        (180 * DAY - 1, "less_than_six_months"),
        (180 * DAY, "more_than_six_months"),
        (400 * DAY, "more_than_six_months"),
    ],
)
def test_lead_time_bucket_boundaries(seconds: int, bucket: str) -> None:
    completed = at(3)
    report = dora(
        [
            fact(
                "d",
                "success",
                completed,
                commit_timestamp=completed - timedelta(seconds=seconds),
            )
        ]
    )
    assert report["lead_time_for_changes"] == {
        "median_seconds": float(seconds),
        "bucket": bucket,
        "deployments": 1,
    }
    assert lead_time_bucket(seconds) == bucket


def test_lead_time_bucket_goes_by_the_median_of_an_even_count() -> None:
    report = dora(
        [
            fact("a", "success", at(2), commit_timestamp=at(2) - timedelta(seconds=86_000)),
            fact("b", "success", at(3), commit_timestamp=at(3) - timedelta(seconds=86_800)),
        ]
    )
    # (86000 + 86800) / 2 = 86400: exactly one day, which is no longer less than one day.
    assert report["lead_time_for_changes"] == {
        "median_seconds": 86_400.0,
        "bucket": "less_than_one_week",
        "deployments": 2,
    }
    assert lead_time_bucket(None) is None


# --- deployment frequency --------------------------------------------------------------------


def test_frequency_daily_when_the_median_week_has_exactly_three_days() -> None:
    # Week 1 has Mon (twice), Tue and Wed: 3 days. Week 2 has Mon, Wed and Fri: 3 days. Week 3
    # has none. Sorted [0, 3, 3], median 3, so daily, although the mean is 2.
    report = dora(successes_on([0, 0, 1, 2, 7, 9, 11]), days=21)
    assert [w["days_with_deployment"] for w in report["weekly"]] == [3, 3, 0]
    assert report["deployment_frequency"] == {
        "per_day": pytest.approx(7 / 21),
        "bucket": "daily",
        "deployments": 7,
    }


def test_frequency_weekly_when_the_median_week_has_two_days() -> None:
    # Week 1 has all 7 days, weeks 2 and 3 have 2 days each. Sorted [2, 2, 7], median 2, so
    # weekly, although the mean is 3.67.
    report = dora(successes_on([0, 1, 2, 3, 4, 5, 6, 7, 8, 14, 20]), days=21)
    assert [w["days_with_deployment"] for w in report["weekly"]] == [7, 2, 2]
    assert report["deployment_frequency"] == {
        "per_day": pytest.approx(11 / 21),
        "bucket": "weekly",
        "deployments": 11,
    }


def test_frequency_every_other_week_depends_on_the_median_of_an_even_or_odd_count() -> None:
    # Four weeks (Jan 1 to 29): days per week are [1, 0, 1, 0]. Sorted [0, 0, 1, 1], median
    # 0.5, which is below 1, so not weekly. The one month that overlaps (January) has 2 weeks
    # with a deployment, median 2 >= 1, so monthly.
    four = dora(successes_on([0, 14]), days=28)
    assert [w["days_with_deployment"] for w in four["weekly"]] == [1, 0, 1, 0]
    assert four["deployment_frequency"] == {
        "per_day": pytest.approx(2 / 28),
        "bucket": "monthly",
        "deployments": 2,
    }
    # Five weeks (until Feb 5): [1, 0, 1, 0, 1], sorted [0, 0, 1, 1, 1], median 1, so weekly.
    five = dora(successes_on([0, 14, 28]), days=35)
    assert [w["days_with_deployment"] for w in five["weekly"]] == [1, 0, 1, 0, 1]
    assert five["deployment_frequency"]["bucket"] == "weekly"


def test_frequency_one_deployment_in_ninety_days() -> None:
    # The period runs from 2024-01-01 (Monday) to 2024-03-31, excluded: 31 + 29 + 30 = 90 days.
    # Weeks overlapping it: the Mondays Jan 1, 8, 15, 22, 29, Feb 5, 12, 19, 26, Mar 4, 11, 18
    # and 25, so 13 weeks. One of them has 1 day with a deployment, so the median of [0] * 12
    # + [1] is 0 and the bucket is not weekly. Months overlapping it: Jan, Feb and Mar, with
    # [1, 0, 0] weeks that had a deployment. The median is 0 and the bucket is not monthly.
    # That leaves yearly. per_day = 1 / 90.
    report = dora(successes_on([40]), days=90)
    assert len(report["weekly"]) == 13
    assert report["until"] == "2024-03-31T00:00:00+00:00"
    assert report["deployment_frequency"] == {
        "per_day": pytest.approx(1 / 90),
        "bucket": "yearly",
        "deployments": 1,
    }
    # One deployment in each month instead: weeks [1, 1, 1] + [0] * 10, median 0. Months
    # [1, 1, 1], median 1, so monthly.
    monthly = dora(successes_on([10, 40, 70]), days=90)
    assert monthly["deployment_frequency"]["bucket"] == "monthly"


def test_failed_deployments_do_not_count_toward_frequency() -> None:
    report = dora([fact("f1", "failed", at(1)), fact("f2", "failed", at(2))])
    assert report["deployment_frequency"] == {"per_day": 0.0, "bucket": None, "deployments": 0}
    assert report["change_failure_rate"] == {"value": 1.0, "failed": 2, "completed": 2}


# --- what is left out ------------------------------------------------------------------------


def test_empty_history() -> None:
    empty_week = {
        "deployments": 0,
        "days_with_deployment": 0,
        "lead_time_median_seconds": None,
        "change_failure_rate": None,
        "failed": 0,
        "completed": 0,
        "time_to_restore_median_seconds": None,
        "restorations": 0,
    }
    assert dora([], days=14) == {
        "environment": "prod",
        "since": "2024-01-01T00:00:00+00:00",
        "until": "2024-01-15T00:00:00+00:00",
        "deployment_frequency": {"per_day": 0.0, "bucket": None, "deployments": 0},
        "lead_time_for_changes": {"median_seconds": None, "bucket": None, "deployments": 0},
        "change_failure_rate": {"value": None, "failed": 0, "completed": 0},
        "time_to_restore": {"median_seconds": None, "restorations": 0, "unrestored": 0},
        "weekly": [
            {"week_start": "2024-01-01", **empty_week},
            {"week_start": "2024-01-08", **empty_week},
        ],
    }


def test_deployments_outside_the_period_are_ignored() -> None:
    since, until = at(0), at(7)
    report = dora(
        [
            # This failure came before the period, so the success at `since` restores nothing.
            fact("before", "failed", since - timedelta(seconds=1)),
            fact("at-since", "success", since),
            fact("started-before", "success", at(0, 1), created_at=since - timedelta(days=2)),
            fact("failing", "failed", until - timedelta(hours=1)),
            # The fix for "failing" lands after the period, so that failure stays unrestored.
            fact("fix-after", "success", until + timedelta(hours=1)),
            fact("at-until", "success", until),
        ]
    )
    assert report["deployment_frequency"]["deployments"] == 2
    assert report["change_failure_rate"] == {"value": 1 / 3, "failed": 1, "completed": 3}
    assert report["time_to_restore"] == {
        "median_seconds": None,
        "restorations": 0,
        "unrestored": 1,
    }


def test_cancelled_deployments_are_ignored() -> None:
    report = dora(
        [
            fact("ok", "success", at(1)),
            fact("stopped", "failed", at(2), cancelled=True),
            fact("stopped-late", "rolled_back", at(3), cancelled=True),
            fact("odd", "success", at(4), cancelled=True, commit_timestamp=at(3)),
        ]
    )
    assert report["change_failure_rate"] == {"value": 0.0, "failed": 0, "completed": 1}
    assert report["time_to_restore"] == {
        "median_seconds": None,
        "restorations": 0,
        "unrestored": 0,
    }
    assert report["deployment_frequency"]["deployments"] == 1
    assert report["lead_time_for_changes"]["deployments"] == 0


@pytest.mark.parametrize("status", ["pending", "building", "deploying"])
def test_unfinished_deployments_are_ignored(status: str) -> None:
    report = dora(
        [
            fact("ok", "success", at(1)),
            fact("running", status, None, created_at=at(2)),
            # A completed_at on an unfinished status is inconsistent data, and is still ignored.
            fact("odd", status, at(3), commit_timestamp=at(2)),
        ]
    )
    assert report["change_failure_rate"] == {"value": 0.0, "failed": 0, "completed": 1}
    assert report["deployment_frequency"]["deployments"] == 1
    assert report["lead_time_for_changes"]["deployments"] == 0


def test_a_success_without_completed_at_is_ignored() -> None:
    report = dora([fact("odd", "success", None, created_at=at(1))])
    assert report["change_failure_rate"]["completed"] == 0


def test_naive_datetimes_and_empty_periods_are_refused() -> None:
    naive = datetime(2024, 1, 1)
    with pytest.raises(ValueError, match="UTC offset"):
        compute_dora([], environment="prod", since=naive, until=at(7))
    with pytest.raises(ValueError, match="UTC offset"):
        dora([fact("d", "success", naive + timedelta(days=1), created_at=at(0))])
    with pytest.raises(ValueError, match="before"):
        compute_dora([], environment="prod", since=at(7), until=at(7))


def test_other_offsets_are_read_as_the_same_instant_in_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    # 01:00 on Monday Jan 8 at +02:00 is 23:00 on Sunday Jan 7 in UTC, so it is in week 1.
    local = datetime(2024, 1, 8, 1, tzinfo=plus_two)
    report = compute_dora(
        [fact("d", "success", local)],
        environment="prod",
        since=MONDAY.astimezone(plus_two),
        until=at(14),
    )
    assert report["since"] == "2024-01-01T00:00:00+00:00"
    assert [w["deployments"] for w in report["weekly"]] == [1, 0]


# --- weekly series ---------------------------------------------------------------------------


def two_weeks() -> list[DeploymentFact]:
    return [
        # Week of Jan 1
        fact("s1", "success", at(0, 10), commit_timestamp=at(0, 9)),  # lead 1 h
        fact("s2", "success", at(1, 10), commit_timestamp=at(1, 7)),  # lead 3 h
        fact("f1", "failed", at(6, 22), commit_timestamp=at(6, 20)),  # opens on Sunday
        # Week of Jan 8
        fact("s3", "success", at(7, 1), commit_timestamp=at(6, 23)),  # closes f1 after 3 h; 2 h
        fact("r1", "rolled_back", at(9, 12), commit_timestamp=at(9, 11)),  # opens; lead 1 h
        fact("s4", "success", at(9, 12.5)),  # the rollback: closes r1 after 30 min
        fact("s5", "success", at(9, 18), commit_timestamp=at(9, 17.5)),  # lead 30 min
    ]


def test_weekly_series_for_two_weeks() -> None:
    assert dora(two_weeks(), days=14) == {
        "environment": "prod",
        "since": "2024-01-01T00:00:00+00:00",
        "until": "2024-01-15T00:00:00+00:00",
        "deployment_frequency": {
            # s1, s2, s3, r1, s4, s5 in 14 days. Weeks have [2, 2] days, so weekly.
            "per_day": pytest.approx(6 / 14),
            "bucket": "weekly",
            "deployments": 6,
        },
        "lead_time_for_changes": {
            # [1800, 3600, 3600, 7200, 10800]; f1's 2 h does not count: it failed.
            "median_seconds": 3600.0,
            "bucket": "less_than_one_day",
            "deployments": 5,
        },
        "change_failure_rate": {"value": 2 / 7, "failed": 2, "completed": 7},
        "time_to_restore": {
            "median_seconds": 6300.0,  # median(10800, 1800)
            "restorations": 2,
            "unrestored": 0,
        },
        "weekly": [
            {
                "week_start": "2024-01-01",
                "deployments": 2,
                "days_with_deployment": 2,
                "lead_time_median_seconds": 7200.0,  # median(3600, 10800)
                "change_failure_rate": 1 / 3,
                "failed": 1,
                "completed": 3,
                # f1's episode opened here but closes next week, so it belongs to next week.
                "time_to_restore_median_seconds": None,
                "restorations": 0,
            },
            {
                "week_start": "2024-01-08",
                "deployments": 4,
                "days_with_deployment": 2,  # Monday and Wednesday
                "lead_time_median_seconds": 3600.0,  # median(7200, 3600, 1800)
                "change_failure_rate": 0.25,
                "failed": 1,
                "completed": 4,
                "time_to_restore_median_seconds": 6300.0,
                "restorations": 2,
            },
        ],
    }


def test_weekly_series_includes_partial_weeks_at_both_ends() -> None:
    # From Wednesday Jan 3, 12:00 to Wednesday Jan 17, 12:00: this overlaps three weeks.
    report = dora(
        [
            fact("early", "success", at(2, 11)),  # before since
            fact("a", "success", at(2, 13)),
            fact("b", "success", at(15, 9)),
            fact("late", "success", at(16, 13)),  # after until
        ],
        since=at(2, 12),
        days=14,
    )
    assert [(w["week_start"], w["deployments"]) for w in report["weekly"]] == [
        ("2024-01-01", 1),
        ("2024-01-08", 0),
        ("2024-01-15", 1),
    ]


def test_a_period_ending_at_midnight_on_monday_does_not_include_that_week() -> None:
    assert [w["week_start"] for w in dora([], days=7)["weekly"]] == ["2024-01-01"]
    assert [w["week_start"] for w in dora([], days=7.5)["weekly"]] == [
        "2024-01-01",
        "2024-01-08",
    ]


# --- CSV and HTML ----------------------------------------------------------------------------


def test_csv_parses_back_with_a_totals_row_first() -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(dora(two_weeks(), days=14)))))
    assert list(rows[0]) == [
        "week_start",
        "deployments",
        "days_with_deployment",
        "lead_time_median_seconds",
        "change_failure_rate",
        "failed",
        "completed",
        "time_to_restore_median_seconds",
        "restorations",
    ]
    assert rows[0] == {
        "week_start": "total",
        "deployments": "6",
        "days_with_deployment": "4",
        "lead_time_median_seconds": "3600.0",
        "change_failure_rate": repr(2 / 7),
        "failed": "2",
        "completed": "7",
        "time_to_restore_median_seconds": "6300.0",
        "restorations": "2",
    }
    assert [r["week_start"] for r in rows[1:]] == ["2024-01-01", "2024-01-08"]
    # None is an empty cell, not a 0.
    assert rows[1]["time_to_restore_median_seconds"] == ""
    assert rows[2]["change_failure_rate"] == "0.25"


def test_csv_of_an_empty_history() -> None:
    rows = list(csv.DictReader(io.StringIO(to_csv(dora([], days=7)))))
    assert [r["week_start"] for r in rows] == ["total", "2024-01-01"]
    assert rows[0]["lead_time_median_seconds"] == ""
    assert rows[0]["deployments"] == "0"


def test_html_is_a_standalone_page_with_the_figures() -> None:
    report = compute_dora(
        two_weeks(), environment="<x>", since=MONDAY, until=MONDAY + timedelta(days=14)
    )
    page = to_html(report)
    assert page.startswith("<!doctype html>")
    assert page.rstrip().endswith("</html>")
    assert "&lt;x&gt;" in page
    assert "<x>" not in page
    # Nothing loaded from elsewhere. The SVG namespace is only an identifier, not a fetch.
    assert "<link" not in page
    assert "<script" not in page
    assert "src=" not in page
    assert "@import" not in page
    assert "@media print" in page
    # The four figures, their buckets, and the counts behind them.
    assert "0.43 per day" in page  # 6 / 14
    assert "<span class='bucket'>weekly</span>" in page
    assert "6 deployments reached production" in page
    assert "1 h 0 min" in page  # lead time, 3600 s
    assert "less than one day" in page
    assert "median of 5 deployments with a commit time" in page
    assert "28.6 %" in page  # 2 / 7
    assert "2 failed of 7 completed deployments" in page
    assert "1 h 45 min" in page  # time to restore, 6300 s
    assert "median of 2 restorations; 0 unrestored at the end" in page
    # The weekly table and the chart.
    assert "2024-01-01" in page
    assert "2024-01-08" in page
    # The chart: core.charts' bars, as on the DORA page, one pair (deployed, failed) a week.
    assert "<svg" in page
    assert page.count("<rect x=") == 4
    assert "01-08: 4 deployments" in page


def test_html_says_no_data_rather_than_zero() -> None:
    page = to_html(compute_dora([], environment="a&b", since=MONDAY, until=at(7)))
    assert "a&amp;b" in page
    assert "no data" in page
    assert "0.00 per day" in page


# --- properties ------------------------------------------------------------------------------

STATUSES = ("pending", "building", "deploying", "success", "failed", "rolled_back")
BASE = datetime(2024, 2, 27, 15, 30, tzinfo=UTC)  # a Tuesday afternoon, in a leap year
# Weighted towards finished deployments, so most examples have something to measure.
WEIGHTED_STATUSES = ("success",) * 4 + ("failed",) * 2 + STATUSES


@st.composite
def deployment_facts(draw: st.DrawFn) -> DeploymentFact:
    created = BASE + timedelta(
        days=draw(st.integers(-5, 45)), seconds=draw(st.integers(0, DAY - 1))
    )
    completed = None
    if draw(st.integers(0, 9)):
        completed = created + timedelta(seconds=draw(st.integers(0, 3 * DAY)))
    commit = None
    if draw(st.integers(0, 3)):
        # Up to a day after completion, to produce the negative lead times that are ignored.
        commit = (completed or created) - timedelta(seconds=draw(st.integers(-DAY, 200 * DAY)))
    return DeploymentFact(
        id=f"d{draw(st.integers(0, 24))}",  # a small pool, so ids repeat
        status=draw(st.sampled_from(WEIGHTED_STATUSES)),
        created_at=created,
        completed_at=completed,
        commit_timestamp=commit,
        cancelled=draw(st.integers(0, 9)) == 0,
    )


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[DeploymentFact], datetime, datetime]:
    facts = draw(st.lists(deployment_facts(), max_size=50))
    since = BASE + timedelta(seconds=draw(st.integers(-2 * DAY, 10 * DAY)))
    # Whole days drawn apart from seconds: drawn as seconds alone, periods come out mostly tiny.
    until = since + timedelta(days=draw(st.integers(0, 40)), seconds=draw(st.integers(1, DAY)))
    return facts, since, until


@settings(max_examples=300, deadline=None)
@given(histories(), st.randoms(use_true_random=False))
def test_properties_of_random_histories(
    history: tuple[list[DeploymentFact], datetime, datetime], rng: Any
) -> None:
    facts, since, until = history
    report = compute_dora(facts, environment="prod", since=since, until=until)
    cfr = report["change_failure_rate"]
    weekly = report["weekly"]
    frequency = report["deployment_frequency"]
    restore = report["time_to_restore"]

    assert cfr["failed"] <= cfr["completed"]
    if cfr["completed"]:
        assert 0 <= cfr["value"] <= 1
    else:
        assert cfr["value"] is None
    assert sum(w["deployments"] for w in weekly) == frequency["deployments"]
    assert sum(w["completed"] for w in weekly) == cfr["completed"]
    assert sum(w["failed"] for w in weekly) == cfr["failed"]
    assert sum(w["restorations"] for w in weekly) == restore["restorations"]
    # Each episode is opened by a different failure.
    assert restore["restorations"] + restore["unrestored"] <= cfr["failed"]
    assert report["lead_time_for_changes"]["deployments"] <= frequency["deployments"]
    assert (frequency["bucket"] is None) == (frequency["deployments"] == 0)
    for week in weekly:
        assert 0 <= week["days_with_deployment"] <= min(7, week["deployments"])
    weeks = [datetime.fromisoformat(w["week_start"]).date() for w in weekly]
    assert all(w.weekday() == 0 for w in weeks)
    assert all((b - a).days == 7 for a, b in itertools.pairwise(weeks))
    assert weeks[0] <= since.date() < weeks[0] + timedelta(days=7)
    last_instant = until - timedelta(microseconds=1)
    assert weeks[-1] <= last_instant.date() < weeks[-1] + timedelta(days=7)

    assert json.loads(json.dumps(report)) == report
    assert len(list(csv.DictReader(io.StringIO(to_csv(report))))) == len(weekly) + 1
    # Repeated rows (a join) change nothing.
    assert compute_dora(facts + facts, environment="prod", since=since, until=until) == report
    # Once ids are unique, the order of the facts changes nothing either.
    unique = list({f.id: f for f in facts}.values())
    rng.shuffle(unique)
    assert compute_dora(unique, environment="prod", since=since, until=until) == report
