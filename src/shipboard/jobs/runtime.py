"""The background thread of ``shipboard serve`` and ``shipboard worker``: the schedule, run on
the elected node, and the loops that run on every node (each in a thread of its own).

Leadership is asked every ``leader_check_s`` (``db/leader.py``: a session advisory lock on a
connection of its own on PostgreSQL; on SQLite the one process leads). Only the leader runs the
schedule; the schedule's rows still decide which due times are left, so a node that briefly
believed it led cannot run a due time another node ran.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

import structlog
from sqlalchemy.engine import Engine

from shipboard.db.leader import LeaderElection
from shipboard.jobs.schedule import Schedule, ScheduledTask

log = structlog.get_logger("shipboard.jobs")


class Loop(Protocol):
    """Work that runs on every node until told to stop (a queue's consumer)."""

    wake: threading.Event

    def run(self, stop: threading.Event) -> None: ...


class Runtime:
    def __init__(
        self,
        engine: Engine,
        *,
        tasks: Sequence[ScheduledTask] = (),
        loops: Sequence[tuple[str, Loop]] = (),
        poll_s: float = 0.5,
        leader_check_s: float = 15.0,
    ) -> None:
        self.engine = engine
        self.schedule = Schedule(engine, tasks)
        self.loops = list(loops)
        self.poll_s = poll_s
        self.leader_check_s = leader_check_s
        # Sticky: the node that leads keeps leading until it stops or dies (db/leader.py).
        self.election = LeaderElection(engine)
        self.leader = False
        self._next_check = 0.0
        self.thread: threading.Thread | None = None

    def wake(self) -> None:
        """New work was queued in this process: the loops look now, not at their next poll."""
        for _name, loop in self.loops:
            loop.wake.set()

    def step(self, *, now: datetime | None = None) -> list[str]:
        """Ask for leadership when it is time to; if this node leads, run the due tasks."""
        if time.monotonic() >= self._next_check:
            self._next_check = time.monotonic() + self.leader_check_s
            self.leader = self.election.holds()
        if not self.leader:
            return []
        ran = self.schedule.run_due(now=now)
        if ran:
            for _name, loop in self.loops:
                loop.wake.set()  # what a task queued goes out now, not at the next poll
        return ran

    def run(self, stop: threading.Event) -> None:
        threads = [
            threading.Thread(target=loop.run, args=(stop,), name=f"shipboard-{name}", daemon=True)
            for name, loop in self.loops
        ]
        for thread in threads:
            thread.start()
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                log.exception("scheduler_tick_failed")
            stop.wait(self.poll_s)
        for _name, loop in self.loops:
            loop.wake.set()
        self.schedule.close()
        for thread in threads:
            thread.join(timeout=15)  # the attempts under way end within their timeout
        self.election.release()

    def start(self) -> threading.Event:
        """Run in a thread of its own; set the returned event to stop it."""
        stop = threading.Event()
        self.thread = threading.Thread(
            target=self.run, args=(stop,), name="shipboard-scheduler", daemon=True
        )
        self.thread.start()
        return stop
