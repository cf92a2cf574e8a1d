"""One schedule for every periodic task, with its last runs in the database.

A task is due when ``now`` has reached its row's ``next_due_at``. Claiming a run moves
``next_due_at`` to the task's next time after ``now`` in the same transaction, under the row's
lock (``FOR UPDATE`` on PostgreSQL, the write lock SQLite takes up front), so:

- a restart skips nothing: the row remembers when the task last ran and when it is next due;
- runs missed while no node ran (the server down across several due times) run once;
- two nodes never both run one due time of a task, even if both believed they led.

A task whose work is only database writes runs *in* the claiming transaction (``run_in``): the
run and its record commit together or not at all. Such a task asks nothing outside the database
(an HTTP call there would hold the row's lock, and SQLite's write lock, for as long as it takes):
it queues a job (``jobs/queue.py``) for that part, which then commits exactly once.

Other tasks (a scrape, a backup) claim, commit, then run (``run``); a node that dies during such
a run loses that one run, and the task runs at its next due time.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipboard.core.time import utcnow
from shipboard.db.engine import is_postgres, system_transaction
from shipboard.db.leader import node_name
from shipboard.jobs.models import JobSchedule

log = structlog.get_logger("shipboard.jobs")


@dataclass(frozen=True)
class Cadence:
    """When a task is first due on a database that never ran it, and next due after a run."""

    first: Callable[[datetime], datetime]
    next: Callable[[datetime], datetime]
    text: str


def every(seconds: float, *, first_after: float = 0.0) -> Cadence:
    """Every ``seconds`` after the last run; the first run ``first_after`` seconds after the
    first look."""
    return Cadence(
        first=lambda now: now + timedelta(seconds=first_after),
        next=lambda now: now + timedelta(seconds=seconds),
        text=f"every {seconds:g} s",
    )


def cron(expression: str) -> Cadence:
    """At the times a cron expression names, in UTC. A database that never ran the task starts
    at the next such time, not at one already past."""
    from croniter import croniter

    def after(now: datetime) -> datetime:
        fire: datetime = croniter(expression, now).get_next(datetime)
        return fire

    return Cadence(first=after, next=after, text=f"cron {expression}")


@dataclass(frozen=True)
class Tick:
    """One run of a task: ``now``, the time it was due (the earliest of the due times it
    stands for), and when the task last ran before it (None: never on this database — a task
    that fires what happened "since the last run" starts from now)."""

    now: datetime
    due: datetime
    last: datetime | None
    engine: Engine


@dataclass(frozen=True)
class ScheduledTask:
    """Work a domain declares in its ``tasks.py``. Exactly one of ``run`` (on its own
    transactions, after the claim committed) and ``run_in`` (inside the claiming transaction)."""

    name: str
    cadence: Cadence
    run: Callable[[Tick], object] | None = None
    run_in: Callable[[Session, Tick], object] | None = None
    # How long a run may take before another may start (a run that ends clears its claim).
    lease_s: float = 600.0
    # Called once when the process stops (wait for threads the task started, say).
    close: Callable[[], None] | None = None

    def __post_init__(self) -> None:
        if (self.run is None) == (self.run_in is None):
            raise ValueError(f"task {self.name}: give exactly one of run and run_in")


@dataclass(frozen=True)
class Ran:
    """A run that happened: what the task returned (None if it raised)."""

    task: str
    result: object


class Schedule:
    """Runs the due tasks of one process. The caller decides whether this node should (the
    runtime asks the leader election); the rows decide which due times are still to run."""

    def __init__(
        self, engine: Engine, tasks: Sequence[ScheduledTask], *, node: str | None = None
    ) -> None:
        names = [task.name for task in tasks]
        if len(set(names)) != len(names):
            raise ValueError(f"scheduled task names repeat: {sorted(names)}")
        self.engine = engine
        self.tasks = list(tasks)
        # Unique per instance: two schedules in one process are two nodes (as in tests).
        self.node = node or f"{node_name()}:{uuid.uuid4().hex[:6]}"
        # The next due time each row showed at the last look. Due times only move forward, so
        # until then the row need not be read (a look is a write transaction on SQLite).
        self._not_before: dict[str, datetime] = {}

    def run_due(self, *, now: datetime | None = None) -> list[str]:
        """Run each task that is due (one after the other); the names of those that ran."""
        ran = []
        for task in self.tasks:
            try:
                if self.run_if_due(task, now=now) is not None:
                    ran.append(task.name)
            except Exception:
                log.exception("scheduled_task_failed", task=task.name)
        return ran

    def run_if_due(self, task: ScheduledTask, *, now: datetime | None = None) -> Ran | None:
        """Claim and run ``task`` if it is due at ``now``; None if it was not due."""
        now = now or utcnow()
        not_before = self._not_before.get(task.name)
        if not_before is not None and now < not_before:
            return None
        if task.run_in is not None:
            return self._run_in_claim(task, task.run_in, now)
        assert task.run is not None
        with system_transaction(self.engine) as session:
            claimed = self._claim(session, task, now)
            if claimed is None:
                return None
            row, due = claimed
            tick = Tick(now=now, due=due, last=row.last_run_at, engine=self.engine)
            row.last_run_at = now
        error: str | None = None
        result: object = None
        try:
            result = task.run(tick)
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
            log.exception("scheduled_task_failed", task=task.name)
        with system_transaction(self.engine) as session:
            session.execute(
                sa.update(JobSchedule)
                .where(JobSchedule.name == task.name, JobSchedule.claimed_by == self.node)
                .values(claimed_until=None, last_error=error)
            )
        return Ran(task.name, result)

    def _run_in_claim(
        self, task: ScheduledTask, run_in: Callable[[Session, Tick], object], now: datetime
    ) -> Ran | None:
        result: object = None
        with system_transaction(self.engine) as session:
            claimed = self._claim(session, task, now)
            if claimed is None:
                return None
            row, due = claimed
            tick = Tick(now=now, due=due, last=row.last_run_at, engine=self.engine)
            try:
                with session.begin_nested():
                    result = run_in(session, tick)
            except Exception as exc:
                # Its writes are undone; the window since the last run stays open for the next
                # due time, which is not now (no retry on every tick).
                row.last_error = f"{type(exc).__name__}: {exc}"[:500]
                log.exception("scheduled_task_failed", task=task.name)
            else:
                row.last_run_at, row.last_error = now, None
            row.claimed_until = None
        return Ran(task.name, result)

    def _claim(
        self, session: Session, task: ScheduledTask, now: datetime
    ) -> tuple[JobSchedule, datetime] | None:
        """The task's row, locked and claimed for a run at ``now``, and the time it was due;
        None if it is not due."""
        insert = postgresql.insert if is_postgres(session) else sqlite.insert
        session.execute(
            insert(JobSchedule)
            .values(name=task.name, next_due_at=task.cadence.first(now))
            .on_conflict_do_nothing(index_elements=["name"])
        )
        row = session.scalars(
            sa.select(JobSchedule)
            .where(JobSchedule.name == task.name)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).one()
        if now < row.next_due_at:
            self._not_before[task.name] = row.next_due_at
            return None
        if row.claimed_until is not None and row.claimed_until > now:
            log.warning("scheduled_task_still_running", task=task.name, by=row.claimed_by)
            return None
        due = row.next_due_at
        row.next_due_at = task.cadence.next(now)
        self._not_before[task.name] = row.next_due_at
        row.claimed_by = self.node
        row.claimed_until = now + timedelta(seconds=task.lease_s)
        session.flush()
        return row, due

    def task(self, name: str) -> ScheduledTask:
        """The task of that name."""
        return next(task for task in self.tasks if task.name == name)

    def close(self) -> None:
        for task in self.tasks:
            if task.close is not None:
                try:
                    task.close()
                except Exception:
                    log.exception("scheduled_task_close_failed", task=task.name)
