"""Periodic jobs: alert evaluation and group flushing on exactly one node, deliveries anywhere.

Runs in its own thread (beside the pipeline worker), so a long deployment never delays alert
evaluation and a slow receiver never delays either.
"""

from __future__ import annotations

import threading
from datetime import timedelta

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from shipboard.core.crypto import Keyring
from shipboard.core.time import utcnow
from shipboard.db.engine import is_postgres, system_transaction
from shipboard.environments import repository as environments
from shipboard.monitoring import alert_service, scrape
from shipboard.monitoring import repository as metrics
from shipboard.notifications import service as notifications

log = structlog.get_logger("shipboard.scheduler")
EVALUATION_LOCK = 0x5B1B0A4E


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        *,
        eval_interval_s: float = 15.0,
        poll_s: float = 0.5,
        max_attempts: int = notifications.MAX_ATTEMPTS,
        max_age_s: float = notifications.MAX_AGE.total_seconds(),
    ) -> None:
        self.max_attempts = max_attempts
        self.max_age = timedelta(seconds=max_age_s)
        self.engine = engine
        self.keyring = keyring
        self.eval_interval_s = eval_interval_s
        self.poll_s = poll_s
        self._next_eval = 0.0
        self._next_scrape: dict[tuple[str, str], float] = {}
        self.leader = False

    def run(self, stop: threading.Event) -> None:
        import time

        while not stop.is_set():
            try:
                if time.monotonic() >= self._next_eval:
                    self._next_eval = time.monotonic() + self.eval_interval_s
                    self.leader = self.evaluate()
                if self.leader:
                    self.scrape_due()
                notifications.send_due(
                    self.engine, self.keyring, max_attempts=self.max_attempts, max_age=self.max_age
                )
            except Exception:
                log.exception("scheduler_tick_failed")
            stop.wait(self.poll_s)

    def evaluate(self) -> bool:
        """One evaluation round, if this node wins the election for it."""
        with system_transaction(self.engine) as session:
            if is_postgres(session) and not session.scalar(
                sa.select(sa.func.pg_try_advisory_xact_lock(EVALUATION_LOCK))
            ):
                return False
            now = utcnow()
            alert_service.evaluate_rules(session, now=now)
            notifications.flush_groups(
                session, now=now, alerts_for=alert_service.group_alerts(session, now)
            )
        return True

    def scrape_due(self) -> int:
        """Scrape the targets that are due (on the elected node only, so samples are not doubled).
        Fetches happen outside any transaction."""
        import time
        import uuid

        with system_transaction(self.engine) as session:
            due = [
                target
                for environment in environments.list_all(session)
                for target in scrape.targets(environment.name, environment.config or {})
                if self._next_scrape.get((target.environment, target.url), 0.0) <= time.monotonic()
            ]
        for target in due:
            self._next_scrape[(target.environment, target.url)] = (
                time.monotonic() + target.interval_s
            )
            rows = scrape.scrape(target)
            with system_transaction(self.engine) as session:
                metrics.add_many(session, [{"id": uuid.uuid4(), **row} for row in rows])
        return len(due)


def start_in_thread(scheduler: Scheduler) -> threading.Event:
    stop = threading.Event()
    threading.Thread(
        target=scheduler.run, args=(stop,), name="shipboard-scheduler", daemon=True
    ).start()
    return stop
