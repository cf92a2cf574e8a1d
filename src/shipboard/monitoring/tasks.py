"""Monitoring's scheduled work: scraping Prometheus targets, on the elected node only (so
samples are not doubled). Alert evaluation is alerting's (``alerting/tasks.py``)."""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor, wait

import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from shipboard.core.crypto import Keyring
from shipboard.core.netguard import OutboundPolicy
from shipboard.db.engine import system_transaction
from shipboard.environments import repository as environments
from shipboard.environments.service import plaintext_config
from shipboard.jobs.schedule import ScheduledTask, Tick, every
from shipboard.monitoring import scrape, service
from shipboard.monitoring.forwarding import Forwarder, Forwarding

log = structlog.get_logger("shipboard.scheduler")
SCRAPE_THREADS = 4
# How often the targets are looked at; each has its own interval (at least 1 s).
SCRAPE_LOOK_S = 0.5
FORWARD_EVERY_S = 1.0
FORWARD_RUN_S = 30.0


class Scraper:
    """Starts the fetches of the targets that are due; each runs on a scrape thread, outside
    any transaction, and a target still being fetched is not started again. A target that
    answers slowly (up to its 10 s timeout) holds up nothing else."""

    def __init__(
        self,
        engine: Engine,
        *,
        keyring: Keyring | None = None,
        outbound: OutboundPolicy | None = None,
        forwarding: Forwarding | None = None,
    ) -> None:
        self.engine = engine
        # Decrypts a password in a target's URL (sealed with the config's other credentials).
        self.keyring = keyring
        self.outbound = outbound or OutboundPolicy()
        self.forwarding = forwarding
        self._next: dict[tuple[str, str], float] = {}
        self._pool: ThreadPoolExecutor | None = None
        self._running: dict[tuple[str, str], Future[None]] = {}

    def scrape_due(self, session: Session | None = None) -> int:
        """Start scraping the targets that are due (read in ``session``, or a transaction of
        its own); how many started."""
        if session is None:
            with system_transaction(self.engine) as own:
                return self.scrape_due(own)
        due = [
            target
            for environment in environments.list_all(session)
            for target in scrape.targets(
                environment.name,
                # A password in a scrape URL is used as written: decrypted only here.
                plaintext_config(environment, keyring=self.keyring),
            )
            if self._next.get((target.environment, target.url), 0.0) <= time.monotonic()
            and not self._in_flight(target)
        ]
        if not due:
            return 0
        if self._pool is None:
            self._pool = ThreadPoolExecutor(SCRAPE_THREADS, thread_name_prefix="shipboard-scrape")
        for target in due:
            key = (target.environment, target.url)
            self._next[key] = time.monotonic() + target.interval_s
            self._running[key] = self._pool.submit(self._scrape_one, target)
        return len(due)

    def _in_flight(self, target: scrape.Target) -> bool:
        future = self._running.get((target.environment, target.url))
        return future is not None and not future.done()

    def _scrape_one(self, target: scrape.Target) -> None:
        try:
            rows = scrape.scrape(target, outbound=self.outbound)
            with system_transaction(self.engine) as session:
                service.store_rows(session, rows=rows, forwarding=self.forwarding)
        except Exception:
            log.exception("scrape_failed", target=target.url)

    def finish(self, timeout: float | None = None) -> None:
        """Wait for the scrapes under way (each ends within its own timeout)."""
        wait(list(self._running.values()), timeout=timeout)

    def close(self) -> None:
        self.finish()
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None


def scheduled(
    engine: Engine,
    *,
    keyring: Keyring | None = None,
    outbound: OutboundPolicy | None = None,
    forwarding: Forwarding | None = None,
) -> list[ScheduledTask]:
    """A look at the scrape targets twice a second; with forwarding on, the remote-write queue
    sent every second."""
    scraper = Scraper(engine, keyring=keyring, outbound=outbound, forwarding=forwarding)
    return [
        ScheduledTask(
            "monitoring.scrape",
            every(SCRAPE_LOOK_S),
            run_in=lambda session, _tick: scraper.scrape_due(session),
            lease_s=60,
            close=scraper.close,
        ),
        *([_forward_task(engine, forwarding)] if forwarding is not None else []),
    ]


def _forward_task(engine: Engine, forwarding: Forwarding) -> ScheduledTask:
    """The remote-write queue, sent by one node at a time (the task's claim), so batches reach
    the store in order. A run sends until the queue is empty, the store cannot take more now,
    or ``FORWARD_RUN_S`` has passed."""
    forwarder = Forwarder(forwarding)

    def run(_tick: Tick) -> None:
        deadline = time.monotonic() + FORWARD_RUN_S
        while time.monotonic() < deadline:
            result = forwarder.forward_once(engine)
            if result.retrying or not (result.sent_points or result.dropped_points):
                return

    return ScheduledTask(
        "monitoring.forward", every(FORWARD_EVERY_S), run=run, lease_s=120, close=forwarder.close
    )
