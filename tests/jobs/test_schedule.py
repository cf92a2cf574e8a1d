"""The job runtime's schedule (``jobs/schedule.py``): last runs live in the database."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipboard.jobs.models import JobSchedule
from shipboard.jobs.schedule import Schedule, ScheduledTask, Tick, cron, every

START = datetime(2026, 11, 26, 9, 30, tzinfo=UTC)


class Recorder:
    def __init__(self) -> None:
        self.ticks: list[Tick] = []
        self.lock = threading.Lock()

    def __call__(self, tick: Tick) -> int:
        with self.lock:
            self.ticks.append(tick)
        return len(self.ticks)


def _hourly(recorder: Recorder) -> list[ScheduledTask]:
    return [ScheduledTask("test.hourly", cron("0 * * * *"), run=recorder)]


def test_a_restart_does_not_skip_a_due_run(engine: Engine) -> None:
    recorder = Recorder()
    before = Schedule(engine, _hourly(recorder))
    assert before.run_due(now=START) == []  # the first look: next due at 10:00
    # The process restarts before 10:00 and looks again after it: the row remembers.
    after = Schedule(engine, _hourly(recorder))
    assert after.run_due(now=START + timedelta(minutes=35)) == ["test.hourly"]
    (tick,) = recorder.ticks
    assert tick.due == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def test_missed_runs_run_once(engine: Engine) -> None:
    recorder = Recorder()
    schedule = Schedule(engine, _hourly(recorder))
    schedule.run_due(now=START)
    # Down from 09:30 to 13:30: four due times passed (10, 11, 12, 13 o'clock).
    later = Schedule(engine, _hourly(recorder))
    assert later.run_due(now=START + timedelta(hours=4)) == ["test.hourly"]
    assert later.run_due(now=START + timedelta(hours=4, minutes=1)) == []
    assert len(recorder.ticks) == 1
    with engine.connect() as conn:
        row = conn.execute(sa.select(JobSchedule.next_due_at, JobSchedule.last_run_at)).one()
    assert row.next_due_at.replace(tzinfo=UTC) == datetime(2026, 11, 26, 14, 0, tzinfo=UTC)
    assert row.last_run_at.replace(tzinfo=UTC) == START + timedelta(hours=4)
    assert later.run_due(now=START + timedelta(hours=4, minutes=31)) == ["test.hourly"]


def test_a_window_task_sees_the_last_run_across_restarts(engine: Engine) -> None:
    """Tasks that fire what happened since their last run get that time from the database."""
    seen: list[datetime | None] = []

    def tasks() -> list[ScheduledTask]:
        return [
            ScheduledTask("test.window", every(5), run_in=lambda _s, tick: seen.append(tick.last))
        ]

    Schedule(engine, tasks()).run_due(now=START)
    Schedule(engine, tasks()).run_due(now=START + timedelta(seconds=10))
    assert seen == [None, START]


def test_a_failed_window_task_keeps_its_window_open(engine: Engine) -> None:
    calls: list[datetime | None] = []

    def flaky(_session: object, tick: Tick) -> None:
        calls.append(tick.last)
        if len(calls) == 2:
            raise RuntimeError("receiver down")

    schedule = Schedule(engine, [ScheduledTask("test.flaky", every(5), run_in=flaky)])
    schedule.run_due(now=START)
    schedule.run_due(now=START + timedelta(seconds=10))  # fails: its writes are undone
    assert schedule.run_due(now=START + timedelta(seconds=11)) == []  # not retried every tick
    schedule.run_due(now=START + timedelta(seconds=20))
    assert calls == [None, START, START]  # the window since START is still open
    with engine.connect() as conn:
        assert conn.scalar(sa.select(JobSchedule.last_error)) is None


def test_two_nodes_never_both_run_one_due_time(engine: Engine) -> None:
    recorder = Recorder()
    nodes = [Schedule(engine, _hourly(recorder)) for _ in range(6)]
    nodes[0].run_due(now=START)
    due = START + timedelta(minutes=31)
    barrier = threading.Barrier(len(nodes))
    ran: list[list[str]] = []

    def race(node: Schedule) -> None:
        barrier.wait()
        ran.append(node.run_due(now=due))

    threads = [threading.Thread(target=race, args=(node,)) for node in nodes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(map(len, ran)) == [0, 0, 0, 0, 0, 1]
    assert len(recorder.ticks) == 1


def test_a_run_still_under_way_is_not_started_again(engine: Engine) -> None:
    """A slow run holds its claim: the next due time waits for it, whichever node looks."""
    started = threading.Event()
    release = threading.Event()
    runs: list[datetime] = []

    def slow(tick: Tick) -> None:
        runs.append(tick.now)
        started.set()
        release.wait(30)

    def tasks() -> list[ScheduledTask]:
        return [ScheduledTask("test.slow", every(1), run=slow, lease_s=600)]

    first, second = Schedule(engine, tasks()), Schedule(engine, tasks())
    release.set()
    first.run_due(now=START)
    release.clear()
    started.clear()
    thread = threading.Thread(target=first.run_due, kwargs={"now": START + timedelta(seconds=2)})
    thread.start()
    assert started.wait(30)
    started.clear()
    try:
        assert second.run_due(now=START + timedelta(seconds=5)) == []
    finally:
        release.set()
        thread.join(timeout=30)
    assert second.run_due(now=START + timedelta(seconds=6)) == ["test.slow"]
    assert len(runs) == 3


def test_task_names_are_unique(engine: Engine) -> None:
    task = ScheduledTask("test.twice", every(1), run=lambda _t: None)
    with pytest.raises(ValueError, match="repeat"):
        Schedule(engine, [task, task])
