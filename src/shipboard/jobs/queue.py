"""One claim-and-lease loop over one jobs table.

- ``enqueue`` adds a job in the caller's transaction: it exists only if that commits.
- ``claim`` takes the oldest runnable job of the kinds a worker handles: ``FOR UPDATE SKIP
  LOCKED`` on PostgreSQL (two workers never take one job; neither waits for the other), SQLite's
  write lock taken up front there. The claim sets a lease (owner, expiry) and counts an attempt.
- While a job runs, its worker renews the lease every ``lease_s / 3``.
- ``reap`` puts back a job whose lease lapsed (its worker died or lost the database): another
  worker takes it, until ``max_attempts`` claims were made; then it fails and its kind's
  ``give_up`` records why (the scan it stood for fails as "worker lost", say).
- A handler that raises: the job is tried again later (backoff) until ``max_attempts``.

Handlers run outside any transaction of the queue's, and must be safe to run again: a worker
that dies half-way leaves the job to the next one. A handler whose result is database writes
makes them exactly once by committing them with ``complete`` (the job marked done in the same
transaction, only while the job is still its worker's).
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
import structlog
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from shipboard.core.time import utcnow
from shipboard.db.engine import is_postgres, system_transaction
from shipboard.jobs.models import Job

log = structlog.get_logger("shipboard.jobs")
RETRY_BASE_S = 5.0
RETRY_CAP_S = 300.0


@dataclass(frozen=True)
class Claimed:
    id: uuid.UUID
    kind: str
    payload: dict[str, Any]
    attempt: int
    worker: str


@dataclass(frozen=True)
class JobKind:
    """What a domain's ``tasks.py`` declares for one kind of job: how to run one, and what to
    record when it is given up (in the reaper's or the last attempt's transaction)."""

    name: str
    run: Callable[[Engine, Claimed], object]
    give_up: Callable[[Session, dict[str, Any], str], None] | None = None


def enqueue(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    run_after: datetime | None = None,
    max_attempts: int = 3,
) -> uuid.UUID:
    """Queue a job in the caller's transaction."""
    now = utcnow()
    job = Job(
        id=uuid.uuid4(),
        kind=kind,
        payload=payload,
        status="queued",
        run_after=run_after or now,
        attempts=0,
        max_attempts=max_attempts,
        created_at=now,
    )
    session.add(job)
    session.flush()
    return job.id


def claim(engine: Engine, kinds: Sequence[str], *, worker: str, lease_s: float) -> Claimed | None:
    """Take the oldest runnable job of ``kinds`` under a lease, or None."""
    now = utcnow()
    with system_transaction(engine) as session:
        stmt = (
            sa.select(Job)
            .where(Job.status == "queued", Job.run_after <= now, Job.kind.in_(list(kinds)))
            .order_by(Job.run_after, Job.created_at)
            .limit(1)
        )
        if is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        job = session.scalars(stmt).first()
        if job is None:
            return None
        job.status, job.attempts = "running", job.attempts + 1
        job.lease_owner, job.lease_expires_at = worker, now + timedelta(seconds=lease_s)
        return Claimed(job.id, job.kind, dict(job.payload), job.attempts, worker)


def renew(engine: Engine, claimed: Claimed, *, lease_s: float) -> bool:
    """Extend the lease; False if the job is no longer this worker's (it was reaped)."""
    with system_transaction(engine) as session:
        done = session.execute(
            sa.update(Job)
            .where(Job.id == claimed.id, Job.status == "running", Job.lease_owner == claimed.worker)
            .values(lease_expires_at=utcnow() + timedelta(seconds=lease_s))
        )
        return bool(getattr(done, "rowcount", 0))


def complete(session: Session, claimed: Claimed) -> bool:
    """Mark the job done in the caller's transaction if it is still this worker's; False if it
    was reaped meanwhile (another worker owns it now, and the caller must write nothing). The
    handler's writes and the job's end commit together: a worker that dies before that commit
    leaves the job to the next, one that dies after it leaves nothing to redo."""
    job = session.get(Job, claimed.id, with_for_update=True, populate_existing=True)
    if job is None or job.status != "running" or job.lease_owner != claimed.worker:
        return False
    job.status, job.finished_at, job.last_error = "done", utcnow(), None
    job.lease_owner, job.lease_expires_at = None, None
    return True


def finish(
    engine: Engine,
    claimed: Claimed,
    *,
    error: str | None = None,
    give_up: Callable[[Session, dict[str, Any], str], None] | None = None,
) -> None:
    """Record the end of a run: done, or (it raised) again later or failed for good."""
    now = utcnow()
    with system_transaction(engine) as session:
        job = session.get(Job, claimed.id, with_for_update=True)
        if job is None or job.status != "running" or job.lease_owner != claimed.worker:
            return  # reaped meanwhile (the next worker owns it), or the handler completed it
        job.lease_owner, job.lease_expires_at = None, None
        if error is None:
            job.status, job.finished_at, job.last_error = "done", now, None
            return
        job.last_error = error[:1000]
        if job.attempts >= job.max_attempts:
            job.status, job.finished_at = "failed", now
            if give_up is not None:
                give_up(session, dict(job.payload), error)
            return
        job.status = "queued"
        job.run_after = now + timedelta(
            seconds=min(RETRY_CAP_S, RETRY_BASE_S * 2 ** (job.attempts - 1))
        )


def reap(engine: Engine, kinds: Sequence[JobKind], *, now: datetime | None = None) -> int:
    """Put back the jobs whose lease lapsed; fail those that used up their attempts."""
    now = now or utcnow()
    by_name = {kind.name: kind for kind in kinds}
    with system_transaction(engine) as session:
        stmt = sa.select(Job).where(
            Job.status == "running",
            Job.lease_expires_at < now,
            Job.kind.in_(list(by_name)),
        )
        if is_postgres(session):
            stmt = stmt.with_for_update(skip_locked=True)
        lapsed = list(session.scalars(stmt))
        for job in lapsed:
            lost = f"worker {job.lease_owner} lost (lease lapsed)"
            log.warning(
                "job_lease_lapsed", job_id=str(job.id), kind=job.kind, worker=job.lease_owner
            )
            job.lease_owner, job.lease_expires_at, job.last_error = None, None, lost
            if job.attempts >= job.max_attempts:
                job.status, job.finished_at = "failed", now
                give_up = by_name[job.kind].give_up
                if give_up is not None:
                    give_up(session, dict(job.payload), lost)
            else:
                job.status, job.run_after = "queued", now
        return len(lapsed)


def run_one(
    engine: Engine, kinds: Sequence[JobKind], *, worker: str, lease_s: float = 30.0
) -> bool:
    """Claim one job of ``kinds`` and run it, renewing its lease meanwhile. True if one ran."""
    by_name = {kind.name: kind for kind in kinds}
    claimed = claim(engine, list(by_name), worker=worker, lease_s=lease_s)
    if claimed is None:
        return False
    kind = by_name[claimed.kind]
    done = threading.Event()

    def keep_leased() -> None:
        while not done.wait(max(0.05, lease_s / 3)):
            try:
                if not renew(engine, claimed, lease_s=lease_s):
                    return
            except SQLAlchemyError:
                log.warning("job_lease_renewal_failed", job_id=str(claimed.id))

    renewer = threading.Thread(target=keep_leased, name="shipboard-job-lease", daemon=True)
    renewer.start()
    error: str | None = None
    try:
        kind.run(engine, claimed)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        log.exception("job_failed", job_id=str(claimed.id), kind=claimed.kind)
    finally:
        done.set()
        renewer.join()
    finish(engine, claimed, error=error, give_up=kind.give_up)
    return True


class QueueWorker:
    """Reaps, claims and runs jobs of the kinds it was given until told to stop; one job at a
    time. Any number of them may run against one database."""

    def __init__(
        self,
        engine: Engine,
        kinds: Sequence[JobKind],
        *,
        worker_id: str | None = None,
        lease_s: float = 30.0,
        poll_s: float = 0.5,
    ) -> None:
        self.engine = engine
        self.kinds = list(kinds)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.lease_s = lease_s
        self.poll_s = poll_s
        self.wake = threading.Event()
        self._next_reap = 0.0

    def step(self) -> bool:
        """Reap lapsed leases (every third of a lease), then claim and run one job."""
        if time.monotonic() >= self._next_reap:
            self._next_reap = time.monotonic() + self.lease_s / 3
            reap(self.engine, self.kinds)
        return run_one(self.engine, self.kinds, worker=self.worker_id, lease_s=self.lease_s)

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                busy = self.step()
            except Exception:
                log.exception("job_worker_step_failed", worker=self.worker_id)
                busy = False
            if not busy:
                self.wake.wait(self.poll_s)
                self.wake.clear()
