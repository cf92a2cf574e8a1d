"""Periodic jobs: alert evaluation and group flushing on exactly one node, deliveries anywhere.

Runs in its own thread (beside the pipeline worker), so a long deployment never delays alert
evaluation and a slow receiver never delays either.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine

from shipboard.config import DEFAULT_PUBLIC_URL
from shipboard.core.crypto import Keyring
from shipboard.core.errors import ShipboardError
from shipboard.core.netguard import OutboundPolicy
from shipboard.core.time import utcnow
from shipboard.db.engine import is_postgres, system_transaction
from shipboard.db.leader import LeaderElection
from shipboard.environments import repository as environments
from shipboard.environments.validation import stored_mapping
from shipboard.monitoring import alert_service, scrape
from shipboard.monitoring import repository as metrics
from shipboard.notifications import delivery, grouping

log = structlog.get_logger("shipboard.scheduler")
EVALUATION_LOCK = 0x5B1B0A4E
RETENTION_FIRST_AFTER_S = 60.0
RETENTION_INTERVAL_S = 3600.0
SCRAPE_THREADS = 4


class Scheduler:
    def __init__(
        self,
        engine: Engine,
        keyring: Keyring,
        *,
        eval_interval_s: float = 15.0,
        poll_s: float = 0.5,
        max_attempts: int = delivery.MAX_ATTEMPTS,
        max_age_s: float = delivery.MAX_AGE.total_seconds(),
        scan_roots: list[str] | None = None,
        scan_protected: Sequence[Path] = (),
        backup_schedule: str | None = None,
        backup_keep: int = 7,
        backup_dir: Path | None = None,
        outbound: OutboundPolicy | None = None,
        alertmanager_resend_s: float = grouping.ALERTMANAGER_RESEND_S,
        public_url: str = DEFAULT_PUBLIC_URL,
    ) -> None:
        self.outbound = outbound or OutboundPolicy()
        self.alertmanager_resend_s = alertmanager_resend_s
        self.public_url = public_url
        self.scan_roots = scan_roots or ["."]
        self.scan_protected = scan_protected
        self.backup_schedule = backup_schedule
        self.backup_keep = backup_keep
        self.backup_dir = backup_dir
        self._last_backup_check: datetime | None = None
        self._backup_thread: threading.Thread | None = None
        self.max_attempts = max_attempts
        self.max_age = timedelta(seconds=max_age_s)
        self.engine = engine
        self.keyring = keyring
        self.eval_interval_s = eval_interval_s
        self.poll_s = poll_s
        self._next_eval = 0.0
        self._next_scrape: dict[tuple[str, str], float] = {}
        # Scrapes run on threads of their own: a target that answers slowly (up to its 10 s
        # timeout) held up alert evaluation and every other job of this loop.
        self._scrapes: ThreadPoolExecutor | None = None
        self._scraping: dict[tuple[str, str], Future[None]] = {}
        self.leader = False
        # Sticky: the node that leads keeps leading until it stops or dies (db/leader.py).
        self.election = LeaderElection(engine)
        self.thread: threading.Thread | None = None
        self._last_schedule_check: float | None = None
        self._last_report_check: datetime | None = None
        # Retention and quota checks: a minute after the first look, then hourly (monotonic).
        self._next_retention: float | None = None
        self.dispatcher = delivery.Dispatcher(
            engine,
            keyring,
            poll_s=poll_s,
            max_attempts=max_attempts,
            max_age=self.max_age,
            outbound=self.outbound,
            public_url=public_url,
        )

    def run(self, stop: threading.Event) -> None:
        import time

        # Deliveries go out on threads of their own: a receiver that hangs until its timeout
        # must not hold up the next evaluation (nor the other receivers).
        dispatcher = threading.Thread(
            target=self.dispatcher.run, args=(stop,), name="shipboard-notify", daemon=True
        )
        dispatcher.start()
        while not stop.is_set():
            try:
                if time.monotonic() >= self._next_eval:
                    self._next_eval = time.monotonic() + self.eval_interval_s
                    self.leader = self.evaluate()
                    self.dispatcher.wake.set()  # what it queued goes out now, not at a poll
                if self.leader:
                    self.scrape_due()
                    self.schedule_scans()
                    self.schedule_reports()
                    self.schedule_backups()
                    self.enforce_retention()
            except Exception:
                log.exception("scheduler_tick_failed")
            stop.wait(self.poll_s)
        self.dispatcher.wake.set()
        self.finish_scrapes()  # each ends within its timeout
        if self._scrapes is not None:
            self._scrapes.shutdown()
            self._scrapes = None
        dispatcher.join(timeout=15)  # the attempts under way end within their timeout
        self.election.release()

    def evaluate(self) -> bool:
        """One evaluation round, if this node leads."""
        if not self.election.holds():
            return False
        with system_transaction(self.engine) as session:
            if is_postgres(session) and not session.scalar(
                sa.select(sa.func.pg_try_advisory_xact_lock(EVALUATION_LOCK))
            ):
                return False
            now = utcnow()
            alert_service.evaluate_rules(session, now=now)
            grouping.flush_groups(
                session,
                now=now,
                alerts_for=alert_service.group_alerts(session, now),
                alertmanager_resend_s=self.alertmanager_resend_s,
                eval_interval_s=self.eval_interval_s,
            )
        return True

    def scrape_due(self) -> int:
        """Start scraping the targets that are due (on the elected node only, so samples are not
        doubled) and return how many started. Each fetch runs on a scrape thread, outside any
        transaction; a target still being fetched is not started again."""
        import time

        with system_transaction(self.engine) as session:
            due = [
                target
                for environment in environments.list_all(session)
                for target in scrape.targets(environment.name, stored_mapping(environment.config))
                if self._next_scrape.get((target.environment, target.url), 0.0) <= time.monotonic()
                and not self._in_flight(target)
            ]
        if not due:
            return 0
        if self._scrapes is None:
            self._scrapes = ThreadPoolExecutor(
                SCRAPE_THREADS, thread_name_prefix="shipboard-scrape"
            )
        for target in due:
            key = (target.environment, target.url)
            self._next_scrape[key] = time.monotonic() + target.interval_s
            self._scraping[key] = self._scrapes.submit(self._scrape_one, target)
        return len(due)

    def _in_flight(self, target: scrape.Target) -> bool:
        future = self._scraping.get((target.environment, target.url))
        return future is not None and not future.done()

    def _scrape_one(self, target: scrape.Target) -> None:
        try:
            rows = scrape.scrape(target, outbound=self.outbound)
            with system_transaction(self.engine) as session:
                metrics.add_many(session, rows)
        except Exception:
            log.exception("scrape_failed", target=target.url)

    def finish_scrapes(self, timeout: float | None = None) -> None:
        """Wait for the scrapes under way (each ends within its own timeout)."""
        wait(list(self._scraping.values()), timeout=timeout)

    def schedule_scans(self, *, now: datetime | None = None) -> int:
        """Request the scans of ``config.security.schedule`` whose cron fired since the last look
        (elected node only, so each fires once)."""
        from croniter import croniter

        from shipboard.audit.service import AuditContext
        from shipboard.security.runs import request_scan
        from shipboard.security.schemas import ScanRun

        now = now or utcnow()
        last = self._last_schedule_check
        self._last_schedule_check = now.timestamp()
        if last is None:
            return 0  # start from now: a restart does not replay missed schedules
        requested = 0
        with system_transaction(self.engine) as session:
            for environment in environments.list_all(session):
                security = stored_mapping(environment.config).get("security")
                schedule = stored_mapping(security).get("schedule") or []
                for entry in schedule if isinstance(schedule, list) else []:
                    try:
                        fired = croniter(str(entry["cron"]), now).get_prev(float)
                        if fired <= last:
                            continue
                        data = ScanRun(
                            environment=environment.name,
                            **{k: entry[k] for k in entry if k != "cron"},
                        )
                        request_scan(
                            session,
                            data=data,
                            roots=self.scan_roots,
                            protected=self.scan_protected,
                            requested_by="scheduler",
                            audit_context=AuditContext(actor="scheduler", actor_role="admin"),
                        )
                        requested += 1
                    except (KeyError, ValueError, TypeError, ShipboardError) as exc:
                        log.warning(
                            "scheduled_scan_invalid",
                            environment=environment.name,
                            error=str(exc)[:300],
                        )
        return requested

    def schedule_reports(self, *, now: datetime | None = None) -> int:
        """Queue the reports of ``config.reports`` whose cron fired since the last look (elected
        node only, so each goes out once). One bad schedule does not stop the others."""
        from shipboard.reports import scheduled

        now = now or utcnow()
        last, self._last_report_check = self._last_report_check, now
        if last is None:
            return 0  # start from now: a restart does not replay missed reports
        queued = 0
        with system_transaction(self.engine) as session:
            for environment in environments.list_all(session):
                for schedule in scheduled.schedules(stored_mapping(environment.config)):
                    if not scheduled.due(schedule, last=last, now=now):
                        continue
                    try:
                        with session.begin_nested():
                            queued += scheduled.deliver(
                                session, environment=environment.name, schedule=schedule, now=now
                            )
                    except (ValueError, ShipboardError) as exc:
                        log.warning(
                            "scheduled_report_failed",
                            environment=environment.name,
                            kind=schedule.kind,
                            error=str(exc)[:300],
                        )
        return queued

    def schedule_backups(self, *, now: datetime | None = None) -> bool:
        """Start the backup ``SHIPBOARD_BACKUP_SCHEDULE`` asks for when its cron fired since the
        last look (elected node only), then keep the newest ``SHIPBOARD_BACKUP_KEEP``. The backup
        runs in a thread of its own: alert evaluation must not wait for a dump."""
        if not self.backup_schedule or self.backup_dir is None:
            return False
        from croniter import croniter

        from shipboard.ops.backup import scheduled as backup

        now = now or utcnow()
        last, self._last_backup_check = self._last_backup_check, now
        if last is None:
            return False  # start from now: a restart does not replay a missed backup
        slot: datetime = croniter(self.backup_schedule, now).get_prev(datetime)
        if slot <= last:
            return False
        if self._backup_thread is not None and self._backup_thread.is_alive():
            log.warning("scheduled_backup_skipped", slot=slot.isoformat(), reason="still running")
            return False
        if not backup.claim_scheduled_backup(self.engine, slot):
            return False  # another node took this one
        url = self.engine.url.render_as_string(hide_password=False)
        directory, keep = self.backup_dir, self.backup_keep

        def run() -> None:
            try:
                report, pruned = backup.run_scheduled_backup(url, directory=directory, keep=keep)
                log.info(
                    "scheduled_backup_written",
                    path=str(report.path),
                    bytes=report.bytes,
                    seconds=round(report.seconds, 1),
                    pruned=[p.name for p in pruned],
                )
            except Exception:
                log.exception("scheduled_backup_failed", slot=slot.isoformat())

        self._backup_thread = threading.Thread(target=run, name="shipboard-backup", daemon=True)
        self._backup_thread.start()
        return True

    def enforce_retention(self, *, force: bool = False) -> bool:
        """Trim metrics and logs past each environment's horizon and check storage quotas, at
        most every ``RETENTION_INTERVAL_S`` (elected node only, so two nodes never race)."""
        import time

        from shipboard.audit.service import AuditContext
        from shipboard.environments.service import check_storage_quotas
        from shipboard.ops import retention

        now = time.monotonic()
        if not force:
            if self._next_retention is None:
                self._next_retention = now + RETENTION_FIRST_AFTER_S
            if now < self._next_retention:
                return False
        # Set before the work: a failing run is retried in an hour, not on every tick.
        self._next_retention = now + RETENTION_INTERVAL_S
        retention.enforce(self.engine)
        with system_transaction(self.engine) as session:
            check_storage_quotas(
                session, audit_context=AuditContext(actor="scheduler", actor_role="admin")
            )
        return True


def start_in_thread(scheduler: Scheduler) -> threading.Event:
    stop = threading.Event()
    scheduler.thread = threading.Thread(
        target=scheduler.run, args=(stop,), name="shipboard-scheduler", daemon=True
    )
    scheduler.thread.start()
    return stop
